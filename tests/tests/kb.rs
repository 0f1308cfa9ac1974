//! The knowledge base over real HTTP on the demo (`outpost-server demo`):
//! a new case gets the right article suggested; an article is drafted from
//! a resolved case with the case's facts, goes through review by another
//! user with a reviewing role, and is found once published; who may do
//! what; bad input named and nothing written.

use anyhow::{Context, Result};
use outpost_tests::Demo;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

struct Api {
    demo: Demo,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        user: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut rq = self
            .http
            .request(method, format!("{}/api/v1{path}", self.demo.url))
            .bearer_auth(self.demo.token(user)?);
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let resp = rq.send().await?;
        let st = resp.status();
        let text = resp.text().await?;
        Ok((st, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn get(&self, user: &str, path: &str) -> Result<(StatusCode, Value)> {
        self.call(Method::GET, user, path, None).await
    }

    async fn post(&self, user: &str, path: &str, body: Value) -> Result<(StatusCode, Value)> {
        self.call(Method::POST, user, path, Some(body)).await
    }

    /// The demo case whose summary starts with `summary`.
    async fn case(&self, summary: &str) -> Result<String> {
        let (_, v) = self.get("dana", "/cases?limit=100").await?;
        v["items"]
            .as_array()
            .context("items")?
            .iter()
            .find(|c| c["summary"].as_str().unwrap_or("").starts_with(summary))
            .and_then(|c| c["number"].as_str())
            .map(String::from)
            .with_context(|| format!("no demo case {summary:?}"))
    }
}

fn start() -> Result<Api> {
    Ok(Api {
        demo: Demo::start()?,
        http: reqwest::Client::new(),
    })
}

#[tokio::test]
async fn a_new_case_on_the_demo_gets_the_right_article() -> Result<()> {
    let api = start()?;
    let (st, devices) = api.get("dana", "/devices").await?;
    assert_eq!(st, 200, "{devices}");
    let device = |name: &str| {
        devices
            .as_array()
            .and_then(|l| l.iter().find(|d| d["name"] == name))
            .and_then(|d| d["id"].as_i64())
    };
    let (st, c) = api
        .post(
            "dana",
            "/cases",
            json!({
                "caller": { "name": "Jana Vogt", "phone": "+49 40 5550 1042" },
                "summary": "dist-sw-1 rebooted three times today",
                "details": "Users lose the network; the switch log shows a power supply alarm before each reload.",
                "priority": "P2",
                "device_id": device("dist-sw-1"),
            }),
        )
        .await?;
    assert_eq!(st, 201, "{c}");
    let number = c["number"].as_str().context("number")?;
    let (st, hits) = api
        .get("erik", &format!("/cases/{number}/suggestions"))
        .await?;
    assert_eq!(st, 200, "{hits}");
    let first = &hits[0];
    assert_eq!(first["kind"], "article");
    assert!(
        first["title"]
            .as_str()
            .unwrap_or("")
            .starts_with("Catalyst 9200L reloads every few hours"),
        "{hits}"
    );
    // The same through search with filters.
    let (st, hits) = api
        .get(
            "erik",
            "/kb/search?q=power+supply+reload&vendor=cisco&type=switch&model=C9200L-24T",
        )
        .await?;
    assert_eq!(st, 200);
    assert!(hits[0]["title"]
        .as_str()
        .unwrap_or("")
        .starts_with("Catalyst 9200L"));
    assert!(hits
        .as_array()
        .context("hits")?
        .iter()
        .all(|h| h["model"] == "C9200L-24T"));
    // Customers do not see the knowledge base.
    let (st, _) = api
        .get("jana", &format!("/cases/{number}/suggestions"))
        .await?;
    assert_eq!(st, 403);
    Ok(())
}

#[tokio::test]
async fn drafted_from_a_case_reviewed_by_another_and_published() -> Result<()> {
    let api = start()?;
    let closed = api.case("dist-sw-2 reboots every few hours").await?;
    let open = api.case("dc-sw-1 port group").await?;

    // Who may draft: case workers; not the spare desk, not customers.
    for (user, want) in [
        ("rita", 403),
        ("jana", 403),
        ("dana", 201),
        ("xavier", 201),
        ("mona", 201),
    ] {
        let (st, v) = api
            .post(user, "/kb/articles", json!({ "case_number": closed }))
            .await?;
        assert_eq!(st.as_u16(), want, "{user}: {v}");
    }

    // Prefilled from the case, its device and its fault report.
    let (st, a) = api
        .post(
            "erik",
            "/kb/articles",
            json!({ "case_number": closed, "title": "Reloads from a tired power supply (walrus)" }),
        )
        .await?;
    assert_eq!(st, 201, "{a}");
    let id = a["id"].as_i64().context("id")?;
    assert_eq!(a["state"], "draft");
    assert_eq!(a["version"], 1);
    assert_eq!(a["source_case"], closed.as_str());
    assert_eq!(a["vendor"], "Cisco");
    assert_eq!(a["model"], "C9200L-24T");
    assert_eq!(a["device_type"], "switch");
    assert_eq!(a["firmware"], "17.6.5");
    assert!(a["symptom"].as_str().unwrap_or("").contains("crashinfo"));
    assert!(a["cause"].as_str().unwrap_or("").contains("capacitor"));
    assert!(a["resolution"]
        .as_str()
        .unwrap_or("")
        .contains("Prevention:"));

    // Not searchable as a draft.
    let (_, hits) = api.get("erik", "/kb/search?q=walrus").await?;
    assert_eq!(hits, json!([]));

    // Bad input, named; nothing written.
    let bad: [(&str, Value, u16, &str); 6] = [
        ("/kb/articles", json!({ "case_number": open }), 409, ""),
        (
            "/kb/articles",
            json!({ "case_number": "C-1999-000001" }),
            404,
            "",
        ),
        (
            "/kb/articles",
            json!({ "case_number": closed, "colour": "red" }),
            422,
            "",
        ),
        (
            "/kb/articles",
            json!({ "case_number": closed, "title": "  " }),
            422,
            "title",
        ),
        (
            "/kb/articles",
            json!({ "case_number": closed, "vendor": "x".repeat(300) }),
            422,
            "vendor",
        ),
        (
            "/kb/articles",
            json!({ "case_number": closed, "cause": "a\u{0}b" }),
            422,
            "cause",
        ),
    ];
    let (_, before) = api.get("erik", "/kb/articles").await?;
    for (path, body, want, field) in bad {
        let (st, v) = api.post("erik", path, body.clone()).await?;
        assert_eq!(st.as_u16(), want, "{body}: {v}");
        if !field.is_empty() {
            assert_eq!(v["field"], field, "{v}");
        }
    }
    let (_, after) = api.get("erik", "/kb/articles").await?;
    assert_eq!(before, after, "refused drafts wrote nothing");

    // An edit is a new version; a stale base version is refused.
    let mut edit = json!({
        "base_version": 1, "title": "Reloads from a tired power supply (walrus)",
        "symptom": a["symptom"], "cause": "", "resolution": a["resolution"],
        "vendor": "Cisco", "device_type": "switch", "model": "C9200L-24T", "firmware": "17.6.5",
    });
    let (st, v) = api
        .call(
            Method::PUT,
            "emma",
            &format!("/kb/articles/{id}"),
            Some(edit.clone()),
        )
        .await?;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["version"], 2);
    assert_eq!(v["edited_by"], "Emma Engineer");
    let (st, v) = api
        .call(
            Method::PUT,
            "emma",
            &format!("/kb/articles/{id}"),
            Some(edit.clone()),
        )
        .await?;
    assert_eq!(st, 409, "{v}");
    // An empty cause cannot go to review.
    let (st, v) = api
        .post("erik", &format!("/kb/articles/{id}/submit"), json!({}))
        .await?;
    assert_eq!(
        (st.as_u16(), v["field"].as_str()),
        (422, Some("cause")),
        "{v}"
    );
    edit["base_version"] = json!(2);
    edit["cause"] = json!("Ageing capacitors in the PWR-C5 supply.");
    let (st, _) = api
        .call(
            Method::PUT,
            "erik",
            &format!("/kb/articles/{id}"),
            Some(edit),
        )
        .await?;
    assert_eq!(st, 200);
    let (st, v) = api
        .post("erik", &format!("/kb/articles/{id}/submit"), json!({}))
        .await?;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["state"], "in_review");
    // Submitted once only.
    let (st, _) = api
        .post("erik", &format!("/kb/articles/{id}/submit"), json!({}))
        .await?;
    assert_eq!(st, 409);

    // Review: not by engineers (role), not by who wrote or submitted it.
    let publish = json!({ "decision": "publish" });
    let review = format!("/kb/articles/{id}/review");
    let (st, _) = api.post("emma", &review, publish.clone()).await?;
    assert_eq!(st, 403, "engineers do not review");
    let (st, _) = api.post("rita", &review, publish.clone()).await?;
    assert_eq!(st, 403);
    let (st, v) = api
        .post("xavier", &review, json!({ "decision": "return" }))
        .await?;
    assert_eq!(
        (st.as_u16(), v["field"].as_str()),
        (422, Some("comment")),
        "{v}"
    );
    let (st, _) = api
        .post("xavier", &review, json!({ "decision": "maybe" }))
        .await?;
    assert_eq!(st, 422);
    let (st, v) = api
        .post(
            "xavier",
            &review,
            json!({ "decision": "return", "comment": "Name the part number." }),
        )
        .await?;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["state"], "draft");
    assert_eq!(v["review_comment"], "Name the part number.");
    // Xavier edits and submits it himself: then he may not review it.
    let (_, cur) = api.get("erik", &format!("/kb/articles/{id}")).await?;
    let (st, _) = api
        .call(
            Method::PUT,
            "xavier",
            &format!("/kb/articles/{id}"),
            Some(json!({
                "base_version": cur["version"], "title": cur["title"], "symptom": cur["symptom"],
                "cause": cur["cause"],
                "resolution": "Replace the PWR-C5-125WAC power supply.",
                "vendor": "Cisco", "device_type": "switch", "model": "C9200L-24T", "firmware": "17.6.5",
            })),
        )
        .await?;
    assert_eq!(st, 200);
    let (st, _) = api
        .post("xavier", &format!("/kb/articles/{id}/submit"), json!({}))
        .await?;
    assert_eq!(st, 200);
    let (st, v) = api.post("xavier", &review, publish.clone()).await?;
    assert_eq!(st, 403, "the author does not review his own text: {v}");
    let (st, v) = api.post("tomas", &review, publish).await?;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["state"], "published");
    assert_eq!(v["published_version"], v["version"]);
    assert_eq!(v["reviewed_by"], "Tomas Technical");

    // Published: found, and every version kept.
    let (_, hits) = api.get("erik", "/kb/search?q=walrus").await?;
    assert_eq!(hits[0]["article_id"], id, "{hits}");
    let (_, versions) = api
        .get("erik", &format!("/kb/articles/{id}/versions"))
        .await?;
    assert_eq!(versions.as_array().map(Vec::len), Some(4));
    // Search input.
    // Undecodable query strings are 400, words that cannot be searched 422;
    // both name the parameter.
    for (q, want, field) in [
        ("/kb/search", 400, "q"),
        ("/kb/search?q=switch&kind=memo", 400, "kind"),
        ("/kb/search?q=switch&colour=red", 400, "colour"),
        ("/kb/search?q=", 422, "q"),
        ("/kb/search?q=the+of", 422, "q"),
        ("/kb/search?q=switch&limit=0", 422, "limit"),
    ] {
        let (st, v) = api.get("erik", q).await?;
        assert_eq!(st.as_u16(), want, "{q}: {v}");
        assert!(v.to_string().contains(field), "{q}: {v}");
    }
    let (st, _) = api.get("erik", "/kb/articles/999999").await?;
    assert_eq!(st, 404);
    Ok(())
}

/// A browser session for a demo user (the demo password).
async fn sign_in(http: &reqwest::Client, base: &str, user: &str) -> Result<(String, String)> {
    use reqwest::header;
    let cookie = |resp: &reqwest::Response, name: &str| {
        resp.headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .and_then(|v| v.split(';').next())
            .map(String::from)
    };
    let resp = http.get(format!("{base}/login")).send().await?;
    let login = cookie(&resp, "outpost_login").context("login cookie")?;
    let page = resp.text().await?;
    let csrf = csrf_field(&page).context("csrf")?;
    let resp = http
        .post(format!("{base}/login"))
        .header(header::COOKIE, login)
        .form(&[
            ("username", user),
            ("password", "outpost-demo"),
            ("csrf", &csrf),
        ])
        .send()
        .await?;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let session = cookie(&resp, "outpost_session").context("session cookie")?;
    let home = http
        .get(format!("{base}/cases"))
        .header(header::COOKIE, &session)
        .send()
        .await?
        .text()
        .await?;
    Ok((session, csrf_field(&home).context("session csrf")?))
}

fn csrf_field(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().map(String::from)
}

#[tokio::test]
async fn console_pages_search_suggest_draft_and_report() -> Result<()> {
    use reqwest::header;
    let api = start()?;
    let base = api.demo.url.clone();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let (session, csrf) = sign_in(&http, &base, "erik").await?;
    let page = |path: String| {
        let http = http.clone();
        let session = session.clone();
        let base = base.clone();
        async move {
            let resp = http
                .get(format!("{base}{path}"))
                .header(header::COOKIE, session)
                .send()
                .await?;
            let st = resp.status();
            anyhow::Ok((st, resp.text().await?))
        }
    };
    let (st, html) = page("/kb?q=power+supply+reloads&vendor=Cisco".into()).await?;
    assert_eq!(st, 200);
    assert!(
        html.contains("Catalyst 9200L reloads every few hours"),
        "{html}"
    );
    assert!(html.contains("ISR4451"), "the article in review is listed");
    let (st, html) = page("/kb?q=the".into()).await?;
    assert_eq!(st, 200);
    assert!(html.contains("role=\"alert\""), "a bad query is explained");
    let (st, html) = page("/kb/articles/1".into()).await?;
    assert_eq!(st, 200);
    assert!(html.contains("Versions") && html.contains("Symptom"));
    let (st, _) = page("/kb/articles/999999".into()).await?;
    assert_eq!(st, 404);
    let port_case = api.case("dc-sw-1 port group").await?;
    let (st, html) = page(format!("/cases/{port_case}")).await?;
    assert_eq!(st, 200);
    assert!(html.contains("Suggested articles"));
    let at = html.find("Suggested articles").unwrap_or(0);
    assert!(
        html[at..].contains("Huawei S5735 port group"),
        "the Huawei article is suggested"
    );
    // Drafting from a closed case, from its workspace.
    let closed = api.case("dist-sw-2 reboots").await?;
    let (_, html) = page(format!("/cases/{closed}")).await?;
    assert!(html.contains("Draft an article from this case"));
    let resp = http
        .post(format!("{base}/kb/draft"))
        .header(header::COOKIE, &session)
        .form(&[("csrf", csrf.as_str()), ("case_number", closed.as_str())])
        .send()
        .await?;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = resp.headers()[header::LOCATION].to_str()?.to_string();
    assert!(
        to.starts_with("/kb/articles/") && to.ends_with("?done=draft"),
        "{to}"
    );
    let (_, html) = page(to.clone()).await?;
    assert!(html.contains("dist-sw-2 reboots every few hours") && html.contains("C9200L-24T"));
    // Without the CSRF token: refused.
    let resp = http
        .post(format!("{base}/kb/draft"))
        .header(header::COOKIE, &session)
        .form(&[("case_number", closed.as_str())])
        .send()
        .await?;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // The service report page and its PDF, from the dossier.
    let (_, html) = page("/console/organizations/1".into()).await?;
    assert!(html.contains("/console/organizations/1/service-report"));
    let (st, html) = page("/console/organizations/1/service-report".into()).await?;
    assert_eq!(st, 200);
    assert!(html.contains("Service report: Nordwind Logistik GmbH"));
    let resp = http
        .get(format!("{base}/console/organizations/1/service-report.pdf"))
        .header(header::COOKIE, &session)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/pdf");
    assert!(resp.bytes().await?.starts_with(b"%PDF-"));

    // A customer finds its own report in the navigation, and no other.
    let (jana, _) = sign_in(&http, &base, "jana").await?;
    let as_jana = |path: &str| {
        http.get(format!("{base}{path}"))
            .header(header::COOKIE, &jana)
            .send()
    };
    let html = as_jana("/cases").await?.text().await?;
    assert!(html.contains("href=\"/console/organizations/1/service-report\""));
    let resp = as_jana("/console/organizations/1/service-report").await?;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await?.contains("Nordwind Logistik GmbH"));
    let resp = as_jana("/console/organizations/2/service-report").await?;
    assert_eq!(resp.status(), 404);
    Ok(())
}
