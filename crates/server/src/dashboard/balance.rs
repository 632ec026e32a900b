//! `GET /dashboard/balance` (being built).

use axum::response::{IntoResponse, Response};
use maud::html;

use super::Viewer;
use super::layout::{self, Nav};

pub async fn page(viewer: Viewer) -> Response {
    layout::shell(&viewer, Nav::Balance, html! { h1 { (Nav::Balance.title()) } }).into_response()
}
