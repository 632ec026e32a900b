//! A fake GitHub for sign-in tests: the OAuth web flow's two endpoints and the two API
//! routes a gateway reads, answering as GitHub does — including its habit of reporting a
//! bad code with HTTP 200 and an `error` field. It approves as whichever user the test
//! chose, or fails in a chosen way.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokenrouter_core::form::{form_decode, form_encode};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The client secret the fake accepts.
pub const CLIENT_SECRET: &str = "github-secret";

/// Who the fake signs in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubUser {
    pub id: i64,
    pub login: String,
    pub name: Option<String>,
    /// The public email (`/user`'s `email`); `None`: private.
    pub email: Option<String>,
    /// The primary, verified address `/user/emails` lists (with an unverified one beside it).
    pub primary_email: Option<String>,
}

/// How the fake misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GithubFault {
    #[default]
    None,
    /// The user denies consent: authorize redirects back with `error=access_denied`.
    DenyConsent,
    /// The token endpoint answers 500.
    TokenServerError,
    /// The token endpoint answers 200 with HTML.
    TokenNonsense,
    /// `/user` answers 500.
    UserServerError,
}

#[derive(Default)]
struct State {
    user: Option<GithubUser>,
    fault: GithubFault,
    /// Codes not yet exchanged → the user they sign in.
    codes: HashMap<String, GithubUser>,
    tokens: HashMap<String, GithubUser>,
    issued: u64,
    /// Token exchanges seen (each with the `redirect_uri` and `client_id` sent).
    exchanges: Vec<(String, String)>,
}

/// A running fake GitHub on loopback.
pub struct FakeGithub {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for FakeGithub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGithub").field("addr", &self.addr).finish()
    }
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl FakeGithub {
    pub async fn start() -> std::io::Result<FakeGithub> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(Arc::clone(&shared), request));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Ok(FakeGithub { addr, state, accept })
    }

    /// `http://127.0.0.1:PORT`: both `base_url` and `api_base_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The user the next authorization approves as.
    pub fn sign_in_as(&self, user: GithubUser) {
        self.state().user = Some(user);
    }

    pub fn fault(&self, fault: GithubFault) {
        self.state().fault = fault;
    }

    /// `(client_id, redirect_uri)` of every token exchange so far.
    pub fn exchanges(&self) -> Vec<(String, String)> {
        self.state().exchanges.clone()
    }
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

fn json_reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    reply(status, "application/json; charset=utf-8", body.to_string())
}

async fn handle(state: Arc<Mutex<State>>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = form_decode(request.uri().query().unwrap_or(""));
    let bearer = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_start_matches("Bearer ").trim_start_matches("token ").to_owned());
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    let response = match (method, path.as_str()) {
        (Method::GET, "/login/oauth/authorize") => {
            let redirect = query.get("redirect_uri").cloned().unwrap_or_default();
            let state_param = form_encode(query.get("state").map_or("", String::as_str));
            let target = match (state.fault, state.user.clone()) {
                (GithubFault::DenyConsent, _) | (_, None) => format!(
                    "{redirect}?error=access_denied&error_description=The+user+has+denied+your+application+access.&state={state_param}"
                ),
                (_, Some(user)) => {
                    state.issued += 1;
                    let code = format!("code{}x{}", state.issued, user.id);
                    state.codes.insert(code.clone(), user);
                    format!("{redirect}?code={code}&state={state_param}")
                }
            };
            let mut response = reply(StatusCode::FOUND, "text/html", "");
            if let Ok(value) = target.parse() {
                response.headers_mut().insert(LOCATION, value);
            }
            response
        }
        (Method::POST, "/login/oauth/access_token") => {
            let form = form_decode(std::str::from_utf8(&body).unwrap_or(""));
            let field = |name: &str| form.get(name).cloned().unwrap_or_default();
            state.exchanges.push((field("client_id"), field("redirect_uri")));
            match state.fault {
                GithubFault::TokenServerError => reply(StatusCode::INTERNAL_SERVER_ERROR, "text/html", "<h1>500</h1>"),
                GithubFault::TokenNonsense => reply(StatusCode::OK, "text/html", "<html>unicorn</html>"),
                _ if field("client_secret") != CLIENT_SECRET => json_reply(
                    StatusCode::OK,
                    &json!({"error": "incorrect_client_credentials", "error_description": "The client_id and/or client_secret passed are incorrect."}),
                ),
                _ => match state.codes.remove(&field("code")) {
                    None => json_reply(
                        StatusCode::OK,
                        &json!({"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired.", "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"}),
                    ),
                    Some(user) => {
                        state.issued += 1;
                        let token = format!("gho_fake{}", state.issued);
                        state.tokens.insert(token.clone(), user);
                        json_reply(
                            StatusCode::OK,
                            &json!({"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"}),
                        )
                    }
                },
            }
        }
        (Method::GET, "/user" | "/user/emails") => {
            let user = bearer.and_then(|token| state.tokens.get(&token).cloned());
            match (state.fault, user) {
                (GithubFault::UserServerError, _) => {
                    json_reply(StatusCode::INTERNAL_SERVER_ERROR, &json!({"message": "Server Error"}))
                }
                (_, None) => json_reply(
                    StatusCode::UNAUTHORIZED,
                    &json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
                ),
                (_, Some(user)) if path == "/user" => json_reply(
                    StatusCode::OK,
                    &json!({
                        "id": user.id, "login": user.login, "name": user.name, "email": user.email,
                        "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", user.id),
                        "type": "User",
                    }),
                ),
                (_, Some(user)) => {
                    let mut emails = vec![
                        json!({"email": format!("{}@unverified.example", user.login), "primary": false, "verified": false, "visibility": null}),
                    ];
                    if let Some(primary) = user.primary_email {
                        emails.push(
                            json!({"email": primary, "primary": true, "verified": true, "visibility": "private"}),
                        );
                    }
                    json_reply(StatusCode::OK, &Value::Array(emails))
                }
            }
        }
        _ => json_reply(StatusCode::NOT_FOUND, &json!({"message": "Not Found"})),
    };
    Ok(response)
}
