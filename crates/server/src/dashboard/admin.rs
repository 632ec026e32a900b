//! `GET /dashboard/admin` (being built).

use axum::response::{IntoResponse, Response};
use maud::html;

use super::Viewer;
use super::layout::{self, Nav};

pub async fn page(viewer: Viewer) -> Response {
    layout::shell(&viewer, Nav::Admin, html! { h1 { (Nav::Admin.title()) } }).into_response()
}
