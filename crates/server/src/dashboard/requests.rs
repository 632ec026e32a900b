//! `GET /dashboard/requests` (being built).

use axum::response::{IntoResponse, Response};
use maud::html;

use super::Viewer;
use super::layout::{self, Nav};

pub async fn page(viewer: Viewer) -> Response {
    layout::shell(&viewer, Nav::Requests, html! { h1 { "Request log" } }).into_response()
}

pub async fn detail(viewer: Viewer) -> Response {
    layout::shell(&viewer, Nav::Requests, html! { h1 { "Request" } }).into_response()
}
