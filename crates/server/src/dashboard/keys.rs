//! `GET /dashboard/keys` (being built).

use axum::response::{IntoResponse, Response};
use maud::html;

use super::Viewer;
use super::layout::{self, Nav};

pub async fn page(viewer: Viewer) -> Response {
    layout::shell(&viewer, Nav::Keys, html! { h1 { (Nav::Keys.title()) } }).into_response()
}
