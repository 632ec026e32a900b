//! `GET /dashboard/usage` (being built).

use axum::response::{IntoResponse, Response};
use maud::html;

use super::Viewer;
use super::layout::{self, Nav};

pub async fn page(viewer: Viewer) -> Response {
    layout::shell(&viewer, Nav::Usage, html! { h1 { "Usage" } }).into_response()
}

pub async fn csv(viewer: Viewer) -> Response {
    layout::shell(&viewer, Nav::Usage, html! { h1 { "Usage" } }).into_response()
}
