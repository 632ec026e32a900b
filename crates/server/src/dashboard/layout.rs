//! The frame every page shares (head, navigation, account menu) and how pages write
//! money, times and counts.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::{Viewer, assets};

/// The dashboard's pages, in the navigation's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Keys,
    Usage,
    Requests,
    Jobs,
    Models,
    Instances,
    Balance,
    Connect,
    Playground,
    Admin,
}

impl Nav {
    const ALL: [Nav; 11] = [
        Nav::Overview,
        Nav::Keys,
        Nav::Usage,
        Nav::Requests,
        Nav::Jobs,
        Nav::Models,
        Nav::Instances,
        Nav::Balance,
        Nav::Connect,
        Nav::Playground,
        Nav::Admin,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Nav::Overview => "Overview",
            Nav::Keys => "API keys",
            Nav::Usage => "Usage",
            Nav::Requests => "Request log",
            Nav::Jobs => "Jobs",
            Nav::Models => "Models",
            Nav::Instances => "Instances",
            Nav::Balance => "Balance",
            Nav::Connect => "Connect",
            Nav::Playground => "Playground",
            Nav::Admin => "Admin",
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Nav::Overview => "/dashboard",
            Nav::Keys => "/dashboard/keys",
            Nav::Usage => "/dashboard/usage",
            Nav::Requests => "/dashboard/requests",
            Nav::Jobs => "/dashboard/jobs",
            Nav::Models => "/dashboard/models",
            Nav::Instances => "/dashboard/instances",
            Nav::Balance => "/dashboard/balance",
            Nav::Connect => "/dashboard/connect",
            Nav::Playground => "/dashboard/playground",
            Nav::Admin => "/dashboard/admin",
        }
    }
}

/// `<head>`: the stylesheet, the shared script and the page's own scripts (all from
/// `/assets`, deferred).
fn head(title: &str, scripts: &[&str]) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="light dark";
            title { (title) " · Token Router" }
            link rel="icon" type="image/svg+xml" href=(assets::url("favicon.svg"));
            link rel="stylesheet" href=(assets::url("app.css"));
            script src=(assets::url("app.js")) defer {}
            @for script in scripts {
                script src=(assets::url(script)) defer {}
            }
        }
    }
}

/// A signed-in page: navigation, the account menu and `body`.
pub fn shell(viewer: &Viewer, active: Nav, body: Markup) -> Markup {
    shell_with(viewer, active, &[], body)
}

/// [`shell`] with the page's own scripts (plain asset names, e.g. `keys.js`).
pub fn shell_with(viewer: &Viewer, active: Nav, scripts: &[&str], body: Markup) -> Markup {
    let account = viewer.account();
    let shown = account.display_name.as_deref().or(account.login.as_deref()).unwrap_or(&account.name);
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(active.title(), scripts))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/dashboard" { (logo()) span { "Token Router" } }
                    details.menu {
                        summary aria-label="Account menu" {
                            span.avatar aria-hidden="true" { (initials(shown)) }
                            span.who { (shown) }
                        }
                        div.menu-body {
                            p { strong { (shown) } br; span.muted { (account.login.as_deref().unwrap_or(&account.name)) } }
                            button type="button" data-logout { "Sign out" }
                        }
                    }
                }
                div.frame {
                    nav.side aria-label="Dashboard" {
                        ul {
                            @for item in Nav::ALL {
                                @if item != Nav::Admin || viewer.is_admin() {
                                    li {
                                        a href=(item.path()) aria-current=[(item == active).then_some("page")] {
                                            (item.title())
                                        }
                                    }
                                }
                            }
                        }
                    }
                    main #main tabindex="-1" {
                        div #flash role="status" aria-live="polite" {}
                        (body)
                    }
                }
            }
        }
    }
}

/// A page for someone not signed in (the sign-in page).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, &[]))
            body.bare {
                main #main {
                    div.brand-lg { (logo()) span { "Token Router" } }
                    (body)
                }
            }
        }
    }
}

fn logo() -> Markup {
    PreEscaped(
        r#"<svg class="logo" viewBox="0 0 24 24" width="24" height="24" aria-hidden="true"><circle cx="5" cy="12" r="3"/><circle cx="19" cy="5" r="3"/><circle cx="19" cy="19" r="3"/><path d="M8 12h4l4-6M12 12l4 6" fill="none" stroke-width="2"/></svg>"#
            .to_owned(),
    )
}

/// Up to two letters for an avatar (no image from another origin).
pub fn initials(name: &str) -> String {
    let mut letters = name.split(|c: char| !c.is_alphanumeric()).filter_map(|w| w.chars().next());
    let first = letters.next().unwrap_or('?');
    match letters.next() {
        Some(second) => format!("{}{}", first.to_uppercase(), second.to_uppercase()),
        None => first.to_uppercase().to_string(),
    }
}

/// `$` and the exact decimal string the API gives (`"-0.000012"` → `-$0.000012`).
pub fn usd(decimal: &str) -> String {
    match decimal.strip_prefix('-') {
        Some(rest) => format!("-${rest}"),
        None => format!("${decimal}"),
    }
}

/// A balance for a headline: cents, rounded toward zero, with the exact value kept for
/// the title attribute by the caller.
pub fn usd_short(nano: i64) -> String {
    let cents = nano / 10_000_000;
    let sign = if nano < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}${}.{:02}", group(cents / 100), cents % 100)
}

/// `1234567` → `1,234,567`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A signed count with thousands separators.
pub fn count(n: i64) -> String {
    if n < 0 { format!("-{}", group(n.unsigned_abs())) } else { group(n.unsigned_abs()) }
}

/// An RFC 3339 time as `2026-12-05 07:40 UTC` inside `<time>`; `—` when absent.
pub fn when(rfc3339: Option<&str>) -> Markup {
    match rfc3339 {
        Some(t) => {
            let shown = t.get(..16).map(|s| s.replace('T', " ")).unwrap_or_else(|| t.to_owned());
            html! { time datetime=(t) { (shown) " UTC" } }
        }
        None => html! { span.muted { "—" } },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_counts_read_well() {
        assert_eq!(usd("12.5"), "$12.5");
        assert_eq!(usd("-0.000012"), "-$0.000012");
        assert_eq!(usd_short(12_345_678_900_000), "$12,345.67");
        assert_eq!(usd_short(-5_000_000_000), "-$5.00");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(-1000), "-1,000");
        assert_eq!(initials("octo cat"), "OC");
        assert_eq!(initials("octocat"), "O");
        assert_eq!(initials(""), "?");
    }
}
