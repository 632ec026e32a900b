//! `GET /dashboard/playground` (being built).

use axum::response::{IntoResponse, Response};
use maud::html;

use super::Viewer;
use super::layout::{self, Nav};

pub async fn page(viewer: Viewer) -> Response {
    layout::shell(&viewer, Nav::Playground, html! { h1 { "Playground" } }).into_response()
}

pub async fn chat(viewer: Viewer) -> Response {
    layout::shell(&viewer, Nav::Playground, html! { h1 { "Playground" } }).into_response()
}
