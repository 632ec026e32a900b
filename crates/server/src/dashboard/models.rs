//! `GET /dashboard/models` (being built).

use axum::response::{IntoResponse, Response};
use maud::html;

use super::Viewer;
use super::layout::{self, Nav};

pub async fn page(viewer: Viewer) -> Response {
    layout::shell(&viewer, Nav::Models, html! { h1 { (Nav::Models.title()) } }).into_response()
}
