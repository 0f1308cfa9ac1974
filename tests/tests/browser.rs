//! The web console in a real browser: headless Debian Chromium driven
//! through chromium-driver (WebDriver), against the real server binary on
//! the README's demo data. A dispatcher finds the customer by ID, sees the
//! dossier and its topology, gets the caller pop-up, opens a case from the
//! dossier and assigns it; an engineer takes it and adds notes; the customer
//! sees only what is public, adds a note, cannot reach another customer's
//! case, and answers the survey once the case is closed.
//!
//! Screenshots of every page go to `target/browser-screenshots/`.

use anyhow::{bail, ensure, Context, Result};
use fantoccini::{Client, Locator};
use outpost_tests::{wait_until, ChromeDriver, Demo};
use std::path::PathBuf;
use std::time::Duration;

fn shots_dir() -> PathBuf {
    let dir = std::env::var_os("OUTPOST_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/browser-screenshots")
        });
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Every page the test visits is checked for the basics of accessible
/// markup (one `h1`, a label for every form control, a language), then
/// photographed.
async fn shot(c: &Client, name: &str) -> Result<()> {
    let problems = c
        .execute(
            r#"const out = [];
            if (document.querySelectorAll('h1').length !== 1) out.push('h1 count ' + document.querySelectorAll('h1').length);
            if (!document.documentElement.lang) out.push('no lang');
            document.querySelectorAll('input:not([type=hidden]),select,textarea').forEach(e => {
              if (!(e.labels && e.labels.length) && !e.getAttribute('aria-label')) out.push('unlabelled ' + (e.name || e.id));
            });
            document.querySelectorAll('img:not([alt]),svg[role=img]:not([aria-labelledby]):not([aria-label])').forEach(e => out.push('unnamed image'));
            return out;"#,
            vec![],
        )
        .await?;
    ensure!(
        problems.as_array().is_some_and(Vec::is_empty),
        "{name}: {problems}"
    );
    let png = c.screenshot().await?;
    ensure!(png.starts_with(b"\x89PNG"), "a PNG screenshot of {name}");
    std::fs::write(shots_dir().join(format!("{name}.png")), png)?;
    Ok(())
}

async fn main_text(c: &Client) -> Result<String> {
    Ok(c.find(Locator::Css("main")).await?.text().await?)
}

async fn heading(c: &Client) -> Result<String> {
    Ok(c.find(Locator::Css("main h1")).await?.text().await?)
}

async fn sign_in(c: &Client, base: &str, user: &str) -> Result<()> {
    c.goto(&format!("{base}/login")).await?;
    c.find(Locator::Id("username"))
        .await?
        .send_keys(user)
        .await?;
    c.find(Locator::Id("password"))
        .await?
        .send_keys("outpost-demo")
        .await?;
    submit(c, Locator::Css("button[type=submit]")).await?;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("header.top"))
        .await
        .with_context(|| format!("{user} signed in"))?;
    Ok(())
}

/// Opens the workspace's `<details>` section titled `summary`.
async fn open_action(c: &Client, summary: &str) -> Result<()> {
    let s = c
        .find(Locator::XPath(&format!(
            "//details/summary[normalize-space()='{summary}']"
        )))
        .await
        .with_context(|| format!("the action {summary:?}"))?;
    let details = c
        .find(Locator::XPath(&format!(
            "//details[summary[normalize-space()='{summary}']]"
        )))
        .await?;
    if details.attr("open").await?.is_none() {
        s.click().await?;
    }
    Ok(())
}

/// Clicks what sends a form or follows a link, and waits for the next page
/// (the old one is marked, so it cannot be mistaken for the new one).
async fn submit(c: &Client, what: Locator<'_>) -> Result<()> {
    let target = c.find(what).await?;
    c.execute("window.__outpost_old_page = true;", vec![])
        .await?;
    target.click().await?;
    for _ in 0..150 {
        let old = c
            .execute("return window.__outpost_old_page === true;", vec![])
            .await
            .unwrap_or(serde_json::Value::Bool(true));
        if old == serde_json::Value::Bool(false) {
            c.wait()
                .at_most(Duration::from_secs(10))
                .for_element(Locator::Css("main h1"))
                .await?;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("no new page after the click")
}

/// Waits for the page after a form to say `expected` (the previous page
/// may still be showing its own notice for a moment).
async fn expect_notice(c: &Client, expected: &str) -> Result<()> {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(e) = c.find(Locator::Css("main p.notice, main p.error")).await {
            last = e.text().await.unwrap_or_default();
            if last.contains(expected) {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("expected the notice {expected:?}, the page says {last:?}")
}

#[tokio::test]
async fn dispatcher_engineer_and_customer_work_a_case_in_the_browser() -> Result<()> {
    let demo = Demo::start()?;
    let base = demo.url.clone();
    let driver = ChromeDriver::start().await?;
    let result = run(&demo, &driver, &base).await;
    if result.is_err() {
        eprintln!("server log:\n{}", demo.log_text());
    }
    result
}

async fn run(demo: &Demo, driver: &ChromeDriver, base: &str) -> Result<()> {
    let http = reqwest::Client::new();

    // ---- the dispatcher finds the customer by the ID given on the phone
    let dana = driver.browser("dana").await?;
    sign_in(&dana, base, "dana").await?;
    ensure!(
        dana.current_url().await?.path() == "/console",
        "a dispatcher starts at the console"
    );
    shot(&dana, "01-console").await?;
    let q = dana.find(Locator::Id("q")).await?;
    q.send_keys("10042").await?;
    submit(&dana, Locator::Css("form.search button")).await?;
    dana.wait()
        .for_element(Locator::Id("equipment"))
        .await
        .context("the dossier")?;
    ensure!(heading(&dana).await? == "Nordwind Logistik GmbH");
    let text = main_text(&dana).await?;
    for part in [
        "10042",
        "Contracts",
        "Projects and participants",
        "core-sw-2",
        "in warranty",
        "Open cases",
    ] {
        ensure!(text.contains(part), "the dossier shows {part:?}");
    }
    // The topology diagram lists every demo device.
    let desc = dana
        .find(Locator::Css("svg.topology desc"))
        .await?
        .html(true)
        .await?;
    for device in [
        "core-sw-1",
        "core-sw-2",
        "dist-sw-1",
        "dist-sw-2",
        "wan-rtr-1",
        "fw-1",
        "dc-sw-1",
        "dc-sw-2",
        "dc-sw-3",
        "dc-rtr-1",
        "dc-ap-1",
        "dc-ups-1",
    ] {
        ensure!(desc.contains(device), "the topology lists {device}: {desc}");
    }
    let nodes = dana.find_all(Locator::Css("svg.topology circle")).await?;
    ensure!(nodes.len() >= 12, "{} nodes drawn", nodes.len());
    let red = dana
        .find_all(Locator::Css(
            "svg.topology g.node:not([data-open-cases='0'])",
        ))
        .await?;
    ensure!(!red.is_empty(), "devices with open cases are marked");
    shot(&dana, "02-dossier").await?;

    // ---- the phone system reports a call: the console pops up the caller
    dana.goto(&format!("{base}/console")).await?;
    let (status, _) = (
        http.post(format!("{base}/api/v1/calls"))
            .bearer_auth(demo.token("dana")?)
            .json(&serde_json::json!({ "caller": "+49 40 5550 1042" }))
            .send()
            .await?
            .status(),
        (),
    );
    ensure!(status == 201, "the call is recorded: {status}");
    let popup = dana
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("#caller-popup:not([hidden]) h2"))
        .await
        .context("the caller pop-up")?;
    ensure!(popup.text().await?.contains("+49 40 5550 1042"));
    let popup_text = dana.find(Locator::Id("caller-popup")).await?.text().await?;
    ensure!(
        popup_text.contains("Nordwind Logistik GmbH"),
        "the pop-up names the customer: {popup_text}"
    );
    shot(&dana, "03-caller-popup").await?;
    submit(&dana, Locator::Css("#caller-popup a")).await?;
    dana.wait().for_element(Locator::Id("equipment")).await?;
    ensure!(main_text(&dana).await?.contains("Caller +49 40 5550 1042"));

    // ---- "New case" on core-sw-2 from the dossier, pre-filled
    submit(
        &dana,
        Locator::XPath("//tr[td[1][normalize-space()='core-sw-2']]//a[contains(., 'New case')]"),
    )
    .await?;
    dana.wait().for_element(Locator::Id("summary")).await?;
    let phone = dana
        .find(Locator::Id("caller_phone"))
        .await?
        .prop("value")
        .await?;
    ensure!(
        phone.as_deref() == Some("+49 40 5550 1042"),
        "the caller's number is pre-filled: {phone:?}"
    );
    let device = dana
        .find(Locator::Css("#device_id option:checked"))
        .await?
        .text()
        .await?;
    ensure!(
        device.contains("core-sw-2"),
        "the device is pre-selected: {device}"
    );
    dana.find(Locator::Id("caller_name"))
        .await?
        .send_keys("Jana Vogt")
        .await?;
    dana.find(Locator::Id("summary"))
        .await?
        .send_keys("Browser test: core-sw-2 fan tray alarm")
        .await?;
    dana.find(Locator::Id("priority"))
        .await?
        .select_by_value("P3")
        .await?;
    shot(&dana, "04-new-case").await?;
    submit(
        &dana,
        Locator::XPath("//button[normalize-space()='Open the case']"),
    )
    .await?;
    expect_notice(&dana, "The case is open.").await?;
    let title = heading(&dana).await?;
    let number = title
        .split_whitespace()
        .next()
        .context("case number in the title")?
        .to_string();
    ensure!(number.starts_with("C-"), "a case number: {title}");

    // ---- the dispatcher assigns it (to Emma)
    open_action(&dana, "Assign").await?;
    dana.find(Locator::Id("assignee"))
        .await?
        .select_by_label("Emma Engineer (engineer)")
        .await?;
    submit(
        &dana,
        Locator::XPath("//form[contains(@action,'/assign')]//button"),
    )
    .await?;
    expect_notice(&dana, "The case is assigned.").await?;
    ensure!(main_text(&dana).await?.contains("Emma Engineer"));
    shot(&dana, "05-case-assigned").await?;
    dana.goto(&format!("{base}/queues")).await?;
    let waiting = dana.find(Locator::Id("waiting")).await?;
    let _ = waiting;
    let queue = main_text(&dana).await?;
    ensure!(
        queue.contains(&number),
        "the case waits for a response in the queue"
    );
    shot(&dana, "06-queues").await?;

    // ---- Erik sees it in the queue and takes it over, then adds notes
    let erik = driver.browser("erik").await?;
    sign_in(&erik, base, "erik").await?;
    erik.goto(&format!("{base}/queues")).await?;
    submit(
        &erik,
        Locator::XPath(&format!(
            "//tr[td[1][normalize-space()='{number}']]//button[normalize-space()='Take']"
        )),
    )
    .await?;
    expect_notice(&erik, "is yours now").await?;
    erik.goto(&format!("{base}/cases/{number}")).await?;
    ensure!(main_text(&erik)
        .await?
        .contains("Erik Engineer took the case"));
    let internal = "Internal: suspect the PSU batch from the 2024 recall";
    let public = "We are sending a replacement fan tray today.";
    for (text, visibility) in [(internal, "internal"), (public, "public")] {
        erik.find(Locator::Id("note-text"))
            .await?
            .send_keys(text)
            .await?;
        erik.find(Locator::Css(&format!(
            "input[name=visibility][value={visibility}]"
        )))
        .await?
        .click()
        .await?;
        submit(
            &erik,
            Locator::XPath("//button[normalize-space()='Add note']"),
        )
        .await?;
        expect_notice(&erik, "The note is on the case.").await?;
    }
    let history = erik.find(Locator::Id("timeline")).await?;
    let _ = history;
    let text = main_text(&erik).await?;
    ensure!(text.contains(internal) && text.contains(public));
    ensure!(text.contains("SLA clocks"), "staff see the SLA clocks");
    shot(&erik, "07-case-engineer").await?;

    // ---- a spare for the fan tray: Erik requests it, the spare desk ships it
    open_action(&erik, "Request a spare").await?;
    erik.find(Locator::Id("spare-part"))
        .await?
        .select_by_value("C9K-T1-FANTRAY")
        .await?;
    erik.find(Locator::Id("spare-why"))
        .await?
        .send_keys("fan tray 2 failed, confirmed by show environment")
        .await?;
    submit(
        &erik,
        Locator::XPath("//button[normalize-space()='Request']"),
    )
    .await?;
    expect_notice(&erik, "The spare is requested.").await?;
    ensure!(
        erik.find_all(Locator::XPath("//form[contains(@action,'/approve')]"))
            .await?
            .is_empty(),
        "an engineer does not approve spares"
    );
    let rita = driver.browser("rita").await?;
    sign_in(&rita, base, "rita").await?;
    rita.goto(&format!("{base}/cases/{number}")).await?;
    for step in ["approve", "pick"] {
        submit(
            &rita,
            Locator::XPath(&format!("//form[contains(@action,'/{step}')]//button")),
        )
        .await?;
        expect_notice(&rita, "The shipment moved on.").await?;
    }
    rita.find(Locator::XPath(
        "//form[contains(@action,'/ship')]//input[@name='carrier']",
    ))
    .await?
    .send_keys("DHL Express")
    .await?;
    rita.find(Locator::XPath(
        "//form[contains(@action,'/ship')]//input[@name='tracking_number']",
    ))
    .await?
    .send_keys("JD014600006281234567")
    .await?;
    shot(&rita, "07b-spare-desk").await?;
    submit(
        &rita,
        Locator::XPath("//form[contains(@action,'/ship')]//button"),
    )
    .await?;
    expect_notice(&rita, "The shipment moved on.").await?;
    ensure!(main_text(&rita).await?.contains("JD014600006281234567"));
    rita.close().await?;

    // ---- the customer sees the public note only, and adds one
    let jana = driver.browser("jana").await?;
    sign_in(&jana, base, "jana").await?;
    ensure!(jana.current_url().await?.path() == "/cases");
    ensure!(main_text(&jana).await?.contains(&number));
    shot(&jana, "08-portal-cases").await?;
    jana.goto(&format!("{base}/cases/{number}")).await?;
    let text = main_text(&jana).await?;
    ensure!(text.contains(public), "the customer reads the public note");
    ensure!(
        text.contains("shipped, DHL Express JD014600006281234567"),
        "the customer follows the spare's shipment: {text}"
    );
    ensure!(
        !text.contains("approved"),
        "the spare desk's approval is internal"
    );
    ensure!(
        !text.contains(internal) && !text.contains("SLA clocks"),
        "the customer never sees internal entries"
    );
    jana.find(Locator::Id("note-text"))
        .await?
        .send_keys("Thanks, someone will be on site from 8:00.")
        .await?;
    submit(
        &jana,
        Locator::XPath("//button[normalize-space()='Add note']"),
    )
    .await?;
    expect_notice(&jana, "The note is on the case.").await?;
    shot(&jana, "09-portal-case").await?;
    // The customer reports a problem of their own, picking the device.
    jana.goto(&format!("{base}/cases/new")).await?;
    let options = jana
        .find_all(Locator::Css("#device_id option"))
        .await?
        .len();
    ensure!(
        options == 13,
        "Nordwind's twelve devices and 'none': {options}"
    );
    ensure!(
        jana.find_all(Locator::Id("contract")).await?.is_empty()
            && jana.find_all(Locator::Id("assignee_id")).await?.is_empty(),
        "customers pick neither contracts nor engineers"
    );
    jana.find(Locator::Id("device_id"))
        .await?
        .select_by_label("dc-ap-1 - Huawei AirEngine 5761-11, serial 2102313YPS10M5000412")
        .await?;
    jana.find(Locator::Id("summary"))
        .await?
        .send_keys("Wi-Fi in hall C drops every few minutes")
        .await?;
    shot(&jana, "09b-portal-new-case").await?;
    submit(
        &jana,
        Locator::XPath("//button[normalize-space()='Open the case']"),
    )
    .await?;
    expect_notice(&jana, "The case is open.").await?;
    let text = main_text(&jana).await?;
    ensure!(
        text.contains("Wi-Fi in hall C") && text.contains("dc-ap-1"),
        "the customer's case on the picked device: {text}"
    );
    // Another customer's case, by URL: not found (not even "forbidden").
    let other: serde_json::Value = http
        .get(format!("{base}/api/v1/cases?limit=200"))
        .bearer_auth(demo.token("hank")?)
        .send()
        .await?
        .json()
        .await?;
    let harbor = other["items"][0]["number"]
        .as_str()
        .context("a Harbor Health case")?
        .to_string();
    jana.goto(&format!("{base}/cases/{harbor}")).await?;
    ensure!(
        heading(&jana).await? == "Not found",
        "another customer's case is not shown"
    );
    ensure!(!main_text(&jana).await?.contains("cn-sw-1"));
    shot(&jana, "10-portal-other-customer").await?;

    // ---- Erik resolves, the customer confirms and answers the survey
    erik.goto(&format!("{base}/cases/{number}")).await?;
    for (to, reason) in [
        ("responded", "called Jana"),
        ("resolved", "fan tray replaced"),
    ] {
        open_action(&erik, "Change status").await?;
        erik.find(Locator::Id("status"))
            .await?
            .select_by_value(to)
            .await?;
        erik.find(Locator::Id("status-why"))
            .await?
            .send_keys(reason)
            .await?;
        submit(
            &erik,
            Locator::XPath("//form[contains(@action,'/status')]//button"),
        )
        .await?;
        expect_notice(&erik, "The status changed.")
            .await
            .with_context(|| format!("to {to}"))?;
    }
    jana.goto(&format!("{base}/cases/{number}")).await?;
    submit(
        &jana,
        Locator::XPath("//button[normalize-space()='Yes, close the case']"),
    )
    .await?;
    expect_notice(&jana, "The status changed.").await?;
    jana.find(Locator::Css("input[name=rating][value='5']"))
        .await?
        .click()
        .await?;
    jana.find(Locator::Id("survey-comment"))
        .await?
        .send_keys("Quick and friendly.")
        .await?;
    shot(&jana, "11-survey").await?;
    submit(&jana, Locator::XPath("//button[normalize-space()='Send']")).await?;
    expect_notice(&jana, "Thank you for your answer.").await?;
    let text = main_text(&jana).await?;
    ensure!(text.contains("Rated 5 of 5"), "the answer is on the case");
    ensure!(
        jana.find_all(Locator::Id("survey-comment"))
            .await?
            .is_empty(),
        "the survey is answered once"
    );

    // ---- the manager's dashboard, with its charts
    let greta = driver.browser("greta").await?;
    sign_in(&greta, base, "greta").await?;
    ensure!(
        greta.current_url().await?.path() == "/dashboard",
        "a manager starts at the dashboard"
    );
    let charts = greta
        .find_all(Locator::Css("main svg[role=img]"))
        .await?
        .len();
    ensure!(charts >= 2, "the dashboard draws its charts: {charts}");
    let csv = greta
        .find_all(Locator::Css("main a[href$='.csv'], main a[href*='.csv?']"))
        .await?
        .len();
    ensure!(csv >= 3, "tables offer CSV downloads: {csv}");
    shot(&greta, "13-dashboard").await?;
    greta.close().await?;

    // ---- a phone-width screen, and signing out
    dana.set_window_size(390, 844).await?;
    dana.goto(&format!("{base}/cases/{number}")).await?;
    let overflow = dana
        .execute(
            "return document.documentElement.scrollWidth > window.innerWidth + 1;",
            vec![],
        )
        .await?;
    ensure!(
        overflow == serde_json::Value::Bool(false),
        "no sideways scrolling at phone width"
    );
    shot(&dana, "12-case-phone-width").await?;
    for c in [&dana, &erik, &jana] {
        submit(c, Locator::XPath("//button[normalize-space()='Sign out']")).await?;
        c.wait().for_element(Locator::Id("username")).await?;
        c.goto(&format!("{base}/cases")).await?;
        if c.current_url().await?.path() != "/login" {
            bail!("a signed-out browser is sent to the sign-in page");
        }
    }
    wait_until("closing the browsers", 10, async || Ok(true)).await?;
    for c in [dana, erik, jana] {
        c.close().await?;
    }
    Ok(())
}
