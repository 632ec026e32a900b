//! `GET /dashboard/connect` (being built).

use axum::response::{IntoResponse, Response};
use maud::html;

use super::Viewer;
use super::layout::{self, Nav};

pub async fn page(viewer: Viewer) -> Response {
    layout::shell(&viewer, Nav::Connect, html! { h1 { (Nav::Connect.title()) } }).into_response()
}
