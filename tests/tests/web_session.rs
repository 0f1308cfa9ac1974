//! The web console's sign-in over real HTTP: the login form and its CSRF
//! cookie, wrong passwords, the session cookie's attributes, CSRF on the
//! logout form, and a session cookie refused after logout.

use anyhow::{Context, Result};
use outpost_tests::{Backend, Server, World};
use reqwest::{header, redirect, Method, StatusCode};
use serde_json::json;

/// `name=value` of the named cookie among the response's Set-Cookie
/// headers, with the whole header for its attributes.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<(String, String)> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let pair = v.split(';').next().unwrap_or_default().to_string();
            (pair, v.to_string())
        })
}

/// The value of the hidden `csrf` field in a page.
fn csrf_field(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[at..].split('"').next()?.to_string())
}

#[tokio::test]
async fn sign_in_csrf_and_logout_sqlite() -> Result<()> {
    sign_in_csrf_and_logout(Backend::Sqlite).await
}

#[tokio::test]
async fn sign_in_csrf_and_logout_postgres() -> Result<()> {
    sign_in_csrf_and_logout(Backend::Postgres).await
}

async fn sign_in_csrf_and_logout(backend: Backend) -> Result<()> {
    let s = Server::start(backend).await?;
    let w = World::build(&s).await?;
    let (_, me) = s.get("/api/v1/me", &w.dispatcher).await?;
    let username = me["username"].as_str().context("username")?.to_string();
    let display = me["display_name"].as_str().context("name")?.to_string();
    let (st, _) = s
        .call(
            Method::PUT,
            &format!("/api/v1/users/{}/password", me["id"]),
            &s.admin_token,
            Some(json!({ "password": "dispatcher password" })),
        )
        .await?;
    assert_eq!(st, 204);
    let http = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()?;
    let url = |p: &str| format!("{}{p}", s.base);

    // Without a session, the console sends the browser to the sign-in page.
    let resp = http.get(url("/")).send().await?;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/login");

    // The form, and its CSRF token in an HttpOnly, SameSite=Strict cookie.
    let resp = http.get(url("/login")).send().await?;
    assert_eq!(resp.status(), StatusCode::OK);
    let (login_cookie, attrs) = set_cookie(&resp, "outpost_login").context("login cookie")?;
    assert!(
        attrs.contains("HttpOnly") && attrs.contains("SameSite=Strict"),
        "{attrs}"
    );
    let page = resp.text().await?;
    let csrf = csrf_field(&page).context("csrf field")?;
    assert!(page.contains("<label for=\"password\">"), "{page}");

    let post_login = |cookie: Option<&str>, form: Vec<(&str, String)>| {
        let mut rq = http.post(url("/login")).form(&form);
        if let Some(c) = cookie {
            rq = rq.header(header::COOKIE, c.to_string());
        }
        rq.send()
    };
    let good = |password: &str| {
        vec![
            ("username", username.clone()),
            ("password", password.to_string()),
            ("csrf", csrf.clone()),
        ]
    };
    // Refused: no CSRF cookie (a form posted from elsewhere), a wrong token.
    let resp = post_login(None, good("dispatcher password")).await?;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&resp, "outpost_session").is_none());
    let mut forged = good("dispatcher password");
    forged[2].1 = "forged".into();
    let resp = post_login(Some(&login_cookie), forged).await?;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // A wrong password and an unknown user get the same answer.
    let resp = post_login(Some(&login_cookie), good("wrong password!")).await?;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&resp, "outpost_session").is_none());
    let wrong = resp.text().await?;
    assert!(
        wrong.contains("Unknown user name or wrong password."),
        "{wrong}"
    );
    let mut nobody = good("dispatcher password");
    nobody[0].1 = "nobody-here".into();
    let resp = post_login(Some(&login_cookie), nobody).await?;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // Signed in: a session cookie, HttpOnly and SameSite=Strict.
    let resp = post_login(Some(&login_cookie), good("dispatcher password")).await?;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{:?}", resp.headers());
    let (session, attrs) = set_cookie(&resp, "outpost_session").context("session cookie")?;
    assert!(
        attrs.contains("HttpOnly") && attrs.contains("SameSite=Strict") && attrs.contains("Path=/"),
        "{attrs}"
    );
    // Requests with the session cookie.
    let get = |path: &str| http.get(url(path)).header(header::COOKIE, &session).send();
    let logout = |csrf: &str| {
        http.post(url("/logout"))
            .header(header::COOKIE, &session)
            .form(&[("csrf", csrf.to_string())])
            .send()
    };
    // The session is not an API credential.
    let resp = get("/api/v1/me").await?;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = get("/").await?;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/console");
    let home = get("/console").await?;
    assert_eq!(home.status(), StatusCode::OK);
    let home = home.text().await?;
    assert!(home.contains(&display), "{home}");
    let session_csrf = csrf_field(&home).context("logout csrf")?;

    // Every console form needs the session's token: a note posted without
    // it, or with another, is refused and nothing is written.
    let number = w.open_case(&s, false, "web form CSRF").await?;
    let note = |csrf: Option<&str>| {
        let mut form = vec![("text", "a note".to_string())];
        if let Some(c) = csrf {
            form.push(("csrf", c.to_string()));
        }
        http.post(url(&format!("/cases/{number}/note")))
            .header(header::COOKIE, &session)
            .form(&form)
            .send()
    };
    let entries = || async {
        let (_, h) = s
            .get(&format!("/api/v1/cases/{number}/activities"), &w.dispatcher)
            .await?;
        anyhow::Ok(h.as_array().map(Vec::len).unwrap_or(0))
    };
    let before = entries().await?;
    assert_eq!(note(None).await?.status(), StatusCode::FORBIDDEN);
    assert_eq!(note(Some("forged")).await?.status(), StatusCode::FORBIDDEN);
    assert_eq!(entries().await?, before);
    let resp = note(Some(&session_csrf)).await?;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(entries().await?, before + 1);

    // Logout without the form's token is refused, and the session lives on.
    let resp = logout("forged").await?;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = get("/console").await?;
    assert_eq!(resp.status(), StatusCode::OK);

    // Logout with it; the old cookie is refused from then on.
    let resp = logout(&session_csrf).await?;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = get("/").await?;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/login");
    let resp = logout(&session_csrf).await?;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/login");
    // The old cookie writes nothing either, even with the right token.
    let resp = note(Some(&session_csrf)).await?;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/login");
    assert_eq!(entries().await?, before + 1);
    Ok(())
}
