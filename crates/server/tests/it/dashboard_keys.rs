//! The keys, balance and admin pages: what a signed-in person sees on each (their keys
//! but never a secret, the exact balance and the ledger page by page, the admin list
//! for admins only), and that the pages' forms send what the API accepts.

use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION};
use serde_json::{Value, json};
use tokenrouter_core::NanoUsd;
use tokenrouter_store::KeyScope;

use crate::harness::{Gateway, key_for, request_id, user};

/// The page's status and HTML for a browser with `cookie`.
async fn open(gw: &Gateway, cookie: &str, path: &str) -> (u16, String) {
    let response = gw.http.get(format!("{}{path}", gw.url)).header(COOKIE, cookie).send().await.unwrap();
    let status = response.status().as_u16();
    let csp = response.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
    (status, response.text().await.unwrap())
}

/// A management key's secret for `account_id`.
async fn management_key(gw: &Gateway, account_id: i64) -> String {
    let (mut key, secret) = key_for(account_id);
    key.scope = KeyScope::Management;
    gw.add_key(&key).await;
    secret
}

/// The `name="…"` attributes of the form whose opening tag holds `marker`.
fn form_fields(html: &str, marker: &str) -> Vec<String> {
    let start = html.find(marker).unwrap_or_else(|| panic!("no {marker}"));
    let form = &html[start..start + html[start..].find("</form>").unwrap()];
    form.match_indices(" name=\"")
        .map(|(i, m)| {
            let rest = &form[i + m.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

fn position(html: &str, needle: &str) -> usize {
    html.find(needle).unwrap_or_else(|| panic!("no {needle}"))
}

/// The table row whose opening tag holds `attr` (such as `data-key-id="…"`).
fn row<'a>(html: &'a str, attr: &str) -> &'a str {
    let rest = &html[position(html, attr)..];
    &rest[..rest.find("</tr>").unwrap()]
}

/// The cell of `row` labelled `label`.
fn cell<'a>(row: &'a str, label: &str) -> &'a str {
    let rest = &row[position(row, &format!("data-label=\"{label}\""))..];
    &rest[..rest.find("</td>").unwrap()]
}

#[tokio::test]
async fn the_keys_page_lists_each_key_with_its_limits_and_never_a_secret() {
    let gw = Gateway::start().await;
    let cookie = gw.session(gw.account_id).await;
    let (mut limited, limited_secret) = key_for(gw.account_id);
    limited.name = "ci-runner".into();
    limited.models = vec!["gpt-4o-mini".into()];
    limited.ips = vec!["10.0.0.0/8".into()];
    limited.rpm = Some(60);
    limited.tpm = Some(12_000);
    limited.spend_limit = Some(NanoUsd::parse_usd("2.5").unwrap());
    gw.add_key(&limited).await;
    let (mut gone, _) = key_for(gw.account_id);
    gone.name = "old-laptop".into();
    gw.add_key(&gone).await;
    gw.db.revoke_account_key(gw.account_id, &gone.id).await.unwrap();
    let other = gw.db.create_account("someone-else", NanoUsd(0)).await.unwrap();
    let (mut theirs, _) = key_for(other.id);
    theirs.name = "not-yours".into();
    gw.add_key(&theirs).await;
    // The harness's key is used once, so it shows a spend and a last use.
    let answer = gw.chat(json!({"model": "gpt-4o-mini", "messages": user("hi")})).await;
    assert_eq!(answer.status(), 200);
    gw.usage(&request_id(&answer)).await;

    let (status, html) = open(&gw, &cookie, "/dashboard/keys").await;
    assert_eq!(status, 200);
    let limited_row = row(&html, &format!("data-key-id=\"{}\"", limited.id));
    let prefix = tokenrouter::auth::display_prefix(&limited.id);
    for (label, shown) in [
        ("Key", "ci-runner"),
        ("Key", prefix.as_str()),
        ("Status", ">active<"),
        ("Scope", "community: yes"),
        ("Models", "gpt-4o-mini"),
        ("Allowed IPs", "10.0.0.0/8"),
        ("Rate limits", "60 requests/min"),
        ("Rate limits", "12,000 tokens/min"),
        ("Spend", "limit $2.5"),
        ("Spend", ">$0<"),
        ("Last used", "never"),
        ("Status", "never expires"),
    ] {
        assert!(cell(limited_row, label).contains(shown), "{label}: {shown} missing from {limited_row}");
    }
    assert!(limited_row.contains(&format!("data-api=\"DELETE /api/keys/{}\"", limited.id)), "{limited_row}");
    assert!(html.contains(&format!("id=\"edit-tpl-{}\"", limited.id)));
    // The key that was used: a spend and a time of last use.
    let used = row(&html, &format!("data-key-id=\"{}\"", gw.key_id));
    assert!(cell(used, "Last used").contains("<time"), "{used}");
    let spent = cell(used, "Spend");
    assert!(spent.contains(">$0.") && !spent.contains(">$0<"), "{used}");
    // Revoked: shown, marked, last, and neither editable nor revocable again.
    let revoked = position(&html, &format!("data-key-id=\"{}\"", gone.id));
    assert!(revoked > position(&html, &format!("data-key-id=\"{}\"", limited.id)));
    assert!(html[revoked..].contains("revoked"));
    assert!(!html.contains(&format!("DELETE /api/keys/{}", gone.id)));
    assert!(!html.contains(&format!("edit-tpl-{}", gone.id)));
    // Never a secret or its hash; never another account's key.
    for secret in [&limited_secret, &gw.key] {
        let (_, tail) = secret.rsplit_once('_').unwrap();
        assert!(!html.contains(tail), "a secret is on the page");
    }
    let hash: String = limited.secret_hash.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!html.contains(&hash));
    assert!(!html.contains("not-yours") && !html.contains(&theirs.id));
}

#[tokio::test]
async fn the_keys_page_explains_an_empty_list_and_its_forms_send_what_the_api_accepts() {
    let gw = Gateway::start().await;
    let fresh = gw.db.create_account("newcomer", NanoUsd(0)).await.unwrap();
    let cookie = gw.session(fresh.id).await;
    let (status, html) = open(&gw, &cookie, "/dashboard/keys").await;
    assert_eq!(status, 200);
    assert!(html.contains("No keys yet") && !html.contains("data-key-id"), "{html}");

    // The create form holds every option of POST /api/keys, under the API's names, and
    // the API takes a body built from exactly those names.
    let mut fields = form_fields(&html, "id=\"create-key\"");
    fields.sort();
    let expected = ["community", "expires_at", "ips", "models", "name", "rpm", "scope", "spend_limit_usd", "tpm"];
    assert_eq!(fields, expected);
    let values = json!({
        "name": "from-the-form", "scope": "inference", "community": false, "models": ["gpt-4o-*"],
        "ips": ["127.0.0.1"], "rpm": 30, "tpm": 9000, "spend_limit_usd": "1.25", "expires_at": "2099-12-31T23:59:59Z"
    });
    let body: serde_json::Map<String, Value> = fields.iter().map(|f| (f.clone(), values[f].clone())).collect();
    let manager = management_key(&gw, fresh.id).await;
    let created = gw.http.post(format!("{}/api/keys", gw.url)).bearer_auth(&manager).json(&body).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();

    // Its row, and an edit form whose fields PATCH accepts (limits emptied → null).
    let (_, html) = open(&gw, &cookie, "/dashboard/keys").await;
    assert!(html.contains(&format!("data-key-id=\"{id}\"")) && html.contains("from-the-form"));
    assert!(html.contains("$1.25") && html.contains("2099-12-31"));
    let edit = form_fields(&html, &format!("data-edit-key=\"{id}\">"));
    assert_eq!(edit, ["name", "models", "ips", "rpm", "tpm", "spend_limit_usd", "expires_at"]);
    let cleared = json!({"rpm": null, "tpm": null, "spend_limit_usd": null, "expires_at": null, "models": []});
    let patched = gw.http.patch(format!("{}/api/keys/{id}", gw.url)).bearer_auth(&manager).json(&cleared).send();
    assert_eq!(patched.await.unwrap().status(), 200);
    let (_, html) = open(&gw, &cookie, "/dashboard/keys").await;
    let edited = row(&html, &format!("data-key-id=\"{id}\""));
    for (label, now) in [
        ("Models", "all models"),
        ("Rate limits", "no request limit"),
        ("Spend", "no limit"),
        ("Status", "never expires"),
    ] {
        assert!(cell(edited, label).contains(now), "{label}: {edited}");
    }
}

#[tokio::test]
async fn the_balance_page_shows_the_exact_balance_a_redemption_and_the_ledger_page_by_page() {
    let gw = Gateway::start().await;
    let cookie = gw.session(gw.account_id).await;
    let answer = gw.chat(json!({"model": "gpt-4o-mini", "messages": user("hi")})).await;
    let charged = request_id(&answer);
    gw.usage(&charged).await;
    for i in 0..52 {
        gw.db.grant("acme", NanoUsd(1_000 + i), &format!("grant number {i}")).await.unwrap();
    }
    let code = "trc-dashboardtestcode000001";
    let hash = tokenrouter::auth::hash_secret(code);
    gw.db
        .create_codes(&[hash], NanoUsd::parse_usd("7.5").unwrap(), tokenrouter_core::clock::now_unix(), None)
        .await
        .unwrap();
    let before = gw.balance().await;
    let manager = management_key(&gw, gw.account_id).await;
    let redeemed = gw.http.post(format!("{}/api/redeem", gw.url)).bearer_auth(&manager).json(&json!({"code": code}));
    assert_eq!(redeemed.send().await.unwrap().status(), 200);
    let balance = gw.balance().await;
    assert_eq!(balance.0 - before.0, 7_500_000_000);

    let (status, html) = open(&gw, &cookie, "/dashboard/balance").await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!("data-nano-usd=\"{}\"", balance.0)), "{html}");
    assert!(html.contains(&format!("${}", balance.to_decimal_string())));
    // Newest first: the redemption, then the grants; 50 rows and a link to older ones.
    assert_eq!(html.matches("data-ledger-id=").count(), 50);
    assert!(position(&html, ">redemption<") < position(&html, "grant number 51"));
    assert!(html.contains("+$7.5"));
    let older = position(&html, "/dashboard/balance?before=");
    let href = &html[older..older + html[older..].find('"').unwrap()];
    assert!(html[older..].contains(">Older<"));
    assert!(html.contains("Redeem a code") && html.contains("for=\"redeem-code\""));

    // The older page holds the rest: the first grants, the charge with a link to its
    // request, the opening balance; and no further page.
    let (status, older) = open(&gw, &cookie, href).await;
    assert_eq!(status, 200);
    assert!(older.contains("grant number 0") && !older.contains("grant number 51"));
    assert!(older.contains(&format!("href=\"/dashboard/requests/{charged}\"")), "{older}");
    assert!(older.contains(">charge<") && older.contains("-$"));
    assert!(!older.contains("/dashboard/balance?before=") && older.contains(">Newest<"));
    let total = html.matches("data-ledger-id=").count() + older.matches("data-ledger-id=").count();
    let rows = gw.db.ledger_page(gw.account_id, 100, None).await.unwrap();
    assert_eq!(total, rows.len());
    // A cursor that is not one is a readable error page.
    let (status, bad) = open(&gw, &cookie, "/dashboard/balance?before=nope").await;
    assert_eq!(status, 400);
    assert!(bad.contains("role=\"alert\""));
}

#[tokio::test]
async fn the_admin_page_is_for_admins_who_search_accounts_grant_and_mint() {
    let gw = Gateway::start().await;
    let user_cookie = gw.session(gw.account_id).await;
    let (status, html) = open(&gw, &user_cookie, "/dashboard/admin").await;
    assert_eq!(status, 403);
    assert!(html.contains("for the gateway's admins") && !html.contains("data-account-id"), "{html}");
    // Nor does the navigation offer it.
    assert!(!html.contains("href=\"/dashboard/admin\""));

    let root = gw.db.create_account("root", NanoUsd(0)).await.unwrap();
    gw.db.set_admin("root", true).await.unwrap();
    let zebra = gw.db.create_account("zebra-labs", NanoUsd::parse_usd("3").unwrap()).await.unwrap();
    let yak = gw.db.create_account("yak", NanoUsd(0)).await.unwrap();
    gw.db.set_account_disabled("yak", true).await.unwrap();
    let admin_cookie = gw.session(root.id).await;
    let (status, html) = open(&gw, &admin_cookie, "/dashboard/admin").await;
    assert_eq!(status, 200);
    for id in [gw.account_id, root.id, zebra.id, yak.id] {
        assert!(html.contains(&format!("data-account-id=\"{id}\"")), "{id}");
    }
    let yak_row = row(&html, &format!("data-account-id=\"{}\"", yak.id));
    assert!(
        cell(yak_row, "Status").contains(">disabled<") && cell(yak_row, "Access").contains(">Enable<"),
        "{yak_row}"
    );
    let zebra_row = row(&html, &format!("data-account-id=\"{}\"", zebra.id));
    assert_eq!(cell(zebra_row, "Balance").rsplit('>').next(), Some("$3"), "{zebra_row}");
    assert!(cell(zebra_row, "Access").contains(">Disable<"), "{zebra_row}");
    // Admins cannot disable themselves: no button on their own row.
    assert!(!cell(row(&html, &format!("data-account-id=\"{}\"", root.id)), "Access").contains("<button"));
    assert!(html.contains("Create redemption codes") && html.contains("id=\"new-codes\""));
    // The grant and codes forms send what the API accepts.
    let grant = form_fields(&html, &format!("POST /api/admin/accounts/{}/credit", zebra.id));
    assert_eq!(grant, ["amount_usd", "memo"]);
    assert_eq!(form_fields(&html, "id=\"create-codes\""), ["amount_usd", "count", "expires_at"]);

    // A grant through the API shows at once, exactly.
    let manager = management_key(&gw, root.id).await;
    let granted = gw.http.post(format!("{}/api/admin/accounts/{}/credit", gw.url, zebra.id)).bearer_auth(&manager);
    let granted = granted.json(&json!({"amount_usd": "0.000000007", "memo": "thanks"})).send().await.unwrap();
    assert_eq!(granted.status(), 201);

    // Search by a part of the name (any case), or by id.
    let (_, found) = open(&gw, &admin_cookie, "/dashboard/admin?q=ZEB").await;
    let zebra_row = row(&found, &format!("data-account-id=\"{}\"", zebra.id));
    assert_eq!(cell(zebra_row, "Balance").rsplit('>').next(), Some("$3.000000007"), "{zebra_row}");
    for other in [gw.account_id, root.id, yak.id] {
        assert!(!found.contains(&format!("data-account-id=\"{other}\"")), "{other}");
    }
    assert!(found.contains("value=\"ZEB\""));
    let (_, by_id) = open(&gw, &admin_cookie, &format!("/dashboard/admin?q={}", yak.id)).await;
    assert!(by_id.contains(&format!("data-account-id=\"{}\"", yak.id)));
    let (_, none) = open(&gw, &admin_cookie, "/dashboard/admin?q=no-such-account").await;
    assert!(none.contains("No account matches") && !none.contains("data-account-id"));
}

#[tokio::test]
async fn the_pages_send_a_browser_without_a_session_to_sign_in() {
    let gw = Gateway::start().await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for page in ["/dashboard/keys", "/dashboard/balance?before=5", "/dashboard/admin?q=x"] {
        let response = http.get(format!("{}{page}", gw.url)).send().await.unwrap();
        assert_eq!(response.status(), 302, "{page}");
        let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
        assert_eq!(location, format!("/login?next={}", tokenrouter_core::form::form_encode(page)));
    }
}
