//! The dashboard's styles and scripts, embedded in the binary and served under names that
//! carry a hash of their content, so a browser may cache them forever.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use sha2::{Digest, Sha256};

/// Every asset: its plain name, content type and bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    ("app.css", "text/css; charset=utf-8", include_bytes!("../../assets/app.css")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/app.js")),
    ("keys.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/keys.js")),
    ("usage.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/usage.js")),
    ("connect.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/connect.js")),
    ("playground.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/playground.js")),
    ("admin.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/admin.js")),
    ("instances.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/instances.js")),
    ("jobs.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/jobs.js")),
    ("favicon.svg", "image/svg+xml", include_bytes!("../../assets/favicon.svg")),
];

struct Asset {
    name: &'static str,
    /// `name` with the first 12 hex digits of its SHA-256 before the extension.
    hashed: String,
    content_type: &'static str,
    bytes: &'static [u8],
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(name, content_type, bytes)| {
            let digest = Sha256::digest(bytes);
            let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
            let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
            Asset { name, hashed: format!("{stem}.{hex}.{ext}"), content_type, bytes }
        })
        .collect()
});

/// The URL of an asset by its plain name (`app.css` → `/assets/app.3f2a…css`).
pub fn url(name: &str) -> String {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => format!("/assets/{}", asset.hashed),
        None => format!("/assets/{name}"),
    }
}

/// `GET /assets/{file}`: a hashed name is cached for a year; anything else is 404.
pub async fn serve(Path(file): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.hashed == file) else {
        return (StatusCode::NOT_FOUND, [(header::CACHE_CONTROL, "no-store")], "no such asset").into_response();
    };
    let mut response = asset.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_hashed_name_that_serves_it() {
        for (name, _, _) in FILES {
            let url = url(name);
            assert!(url.starts_with("/assets/") && url.len() > name.len() + 20, "{url}");
            assert!(ASSETS.iter().any(|a| format!("/assets/{}", a.hashed) == url));
        }
    }
}
