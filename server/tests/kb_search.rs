//! The knowledge base on the demo data, on both backends (SQLite FTS5 and
//! PostgreSQL full-text): search-quality examples (a query and the hit that
//! must come first), filters, suggestions for new cases, the index following
//! a case that is reopened and an article that is edited after publishing.

use outpost_server::auth::Principal;
use outpost_server::cases::{Caller, Cases, NewCase, Priority, Status, StatusChange};
use outpost_server::clock::SystemClock;
use outpost_server::error::Error;
use outpost_server::kb::{ArticleEdit, Decision, HitKind, Kb, Query, Review, SearchHit};
use outpost_server::store::Store;
use std::sync::Arc;

#[macro_use]
mod common;
use common::TestDb as Db;

async fn who(store: &Store, name: &str) -> anyhow::Result<Principal> {
    let u = store
        .user_by_name(name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no demo user {name}"))?;
    Ok(Principal {
        user_id: u.id,
        username: u.username,
        display_name: u.display_name,
        role: u.role,
        manager_level: u.manager_level,
        organization_id: u.organization_id,
    })
}

fn q(text: &str) -> Query {
    Query {
        text: text.into(),
        ..Default::default()
    }
}

fn titles(hits: &[SearchHit]) -> Vec<String> {
    hits.iter().map(|h| h.title.clone()).collect()
}

async fn seeded(db: &Db) -> anyhow::Result<(Store, Cases, Kb)> {
    let store = db.open().await?;
    outpost_server::demo::seed(&store, Arc::new(SystemClock)).await?;
    let cases = Cases::new(store.clone(), Arc::new(SystemClock));
    let kb = Kb::new(cases.clone());
    Ok((store, cases, kb))
}

async fn search_quality_on_demo_data(db: &Db) -> anyhow::Result<()> {
    let (store, _cases, kb) = seeded(db).await?;
    let erik = who(&store, "erik").await?;
    // (query, the title the first hit must start with)
    let examples = [
        (
            "switch keeps reloading, power supply suspected",
            "Catalyst 9200L reloads every few hours",
        ),
        (
            "how do I back up the configuration to a TFTP server every night",
            "Nightly configuration backup",
        ),
        (
            "CRC errors on the stack cable, member unreachable",
            "Catalyst 9300 stack split",
        ),
        ("eight ports lost link at once", "Huawei S5735 port group"),
        ("PHY chip", "Huawei S5735 port group"),
        ("stackwise", "Catalyst 9300 stack split"),
    ];
    for (query, expected) in examples {
        let hits = kb.search(&erik, &q(query)).await?;
        let first = hits
            .first()
            .ok_or_else(|| anyhow::anyhow!("{query:?} found nothing"))?;
        assert!(
            first.title.starts_with(expected),
            "{query:?}: expected {expected:?} first, got {:?}",
            titles(&hits)
        );
        assert_eq!(first.kind, HitKind::Article, "{query:?}");
        // Ranked: scores never increase down the list.
        assert!(
            hits.windows(2).all(|w| w[0].score >= w[1].score),
            "{query:?}: {hits:?}"
        );
    }

    // Closed cases are searched too; the one closed demo case is found by
    // words from its fault report, and open or resolved cases are not.
    let cases_only = Query {
        kind: Some(HitKind::Case),
        ..q("capacitor ageing power supply")
    };
    let hits = kb.search(&erik, &cases_only).await?;
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].title, "dist-sw-2 reboots every few hours");
    assert!(hits[0]
        .case_number
        .as_deref()
        .is_some_and(|n| n.starts_with("C-")));
    let hits = kb
        .search(
            &erik,
            &Query {
                kind: Some(HitKind::Case),
                ..q("TFTP backup")
            },
        )
        .await?;
    assert!(hits.is_empty(), "a resolved case is not indexed: {hits:?}");

    // An article in review is not searchable.
    let hits = kb.search(&erik, &q("ISR4451 input errors WAN")).await?;
    assert!(
        !titles(&hits).iter().any(|t| t.starts_with("ISR4451")),
        "{hits:?}"
    );

    // Filters: vendor, type and model (any letter case).
    let huawei = Query {
        vendor: Some("huawei".into()),
        ..q("switch ports link")
    };
    let hits = kb.search(&erik, &huawei).await?;
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| h.vendor.as_deref() == Some("Huawei")));
    let model = Query {
        model: Some("c9300-48p".into()),
        ..q("switch configuration stack backup")
    };
    let hits = kb.search(&erik, &model).await?;
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert!(hits.iter().all(|h| h.model.as_deref() == Some("C9300-48P")));
    let routers = Query {
        device_type: Some("router".into()),
        ..q("switch")
    };
    assert!(kb.search(&erik, &routers).await?.is_empty());

    // Bad queries are named.
    for (bad, field) in [("the of and", "q"), ("  ---  ", "q")] {
        match kb.search(&erik, &q(bad)).await {
            Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let too_many = Query {
        limit: Some(51),
        ..q("switch")
    };
    assert!(matches!(
        kb.search(&erik, &too_many).await,
        Err(Error::Invalid { field, .. }) if field == "limit"
    ));
    // FTS syntax is taken as words, never as a query language.
    let hits = kb
        .search(&erik, &q("\"power\" OR supply* NEAR(a b) -crc:"))
        .await?;
    assert!(!hits.is_empty());
    // Customers do not see the knowledge base.
    let jana = who(&store, "jana").await?;
    assert!(matches!(
        kb.search(&jana, &q("switch")).await,
        Err(Error::Forbidden(_))
    ));
    Ok(())
}
both!(search_quality_on_demo_data);

async fn suggestions_for_new_cases(db: &Db) -> anyhow::Result<()> {
    let (store, cases, kb) = seeded(db).await?;
    let dana = who(&store, "dana").await?;
    let devices = store.devices(None, 100).await?;
    let device = |name: &str| devices.iter().find(|d| d.name == name).map(|d| d.id);
    let examples = [
        (
            "dist-sw-1 reloaded twice this morning",
            "The switch restarts by itself; the log shows a power supply fan alarm.",
            device("dist-sw-1"),
            "Catalyst 9200L reloads every few hours",
        ),
        (
            "dc-sw-2: ports 0/0/9-16 have no link",
            "A whole group of ports went dark at once.",
            device("dc-sw-2"),
            "Huawei S5735 port group",
        ),
        (
            "core-sw-2 unreachable, stack member lost",
            "Stack split after maintenance; HSRP keeps flapping.",
            device("core-sw-2"),
            "Catalyst 9300 stack split",
        ),
    ];
    for (summary, details, device_id, expected) in examples {
        let c = cases
            .open(
                &dana,
                &NewCase {
                    caller: Caller {
                        name: "Jana Vogt".into(),
                        company: None,
                        phone: Some("+49 40 5550 1042".into()),
                        email: None,
                        contract: None,
                    },
                    summary: summary.into(),
                    details: details.into(),
                    priority: Priority::P3,
                    case_type: None,
                    vendor: None,
                    channel: None,
                    organization_id: None,
                    device_id,
                    contract: None,
                    assignee_id: None,
                },
            )
            .await?;
        let hits = kb.suggestions(&dana, &c.number).await?;
        assert!(
            hits.first().is_some_and(|h| h.title.starts_with(expected)),
            "{summary:?}: expected {expected:?} first, got {:?}",
            titles(&hits)
        );
        assert!(hits.len() <= 5 && hits.iter().all(|h| h.kind == HitKind::Article));
    }
    assert!(matches!(
        kb.suggestions(&dana, "C-1999-000001").await,
        Err(Error::NotFound(_))
    ));
    Ok(())
}
both!(suggestions_for_new_cases);

async fn index_follows_cases_and_articles(db: &Db) -> anyhow::Result<()> {
    let (store, cases, kb) = seeded(db).await?;
    let (erik, xavier, jana) = (
        who(&store, "erik").await?,
        who(&store, "xavier").await?,
        who(&store, "jana").await?,
    );
    let closed = kb
        .search(
            &erik,
            &Query {
                kind: Some(HitKind::Case),
                ..q("capacitor")
            },
        )
        .await?;
    let number = closed[0].case_number.clone().unwrap_or_default();
    // Reopened: out of the index; closed again: back in.
    cases
        .set_status(
            &jana,
            &number,
            &StatusChange {
                status: Status::Reopened,
                reason: Some("It reloaded again.".into()),
            },
        )
        .await?;
    let capacitor = Query {
        kind: Some(HitKind::Case),
        ..q("capacitor")
    };
    assert!(kb.search(&erik, &capacitor).await?.is_empty());
    for (status, reason) in [
        (Status::Resolved, Some("Second supply replaced.")),
        (Status::Closed, None),
    ] {
        cases
            .set_status(
                &erik,
                &number,
                &StatusChange {
                    status,
                    reason: reason.map(Into::into),
                },
            )
            .await?;
    }
    assert_eq!(kb.search(&erik, &capacitor).await?.len(), 1);

    // A published article edited: the published text stays searchable, the
    // new text is not, until the new version is published in its turn.
    let psu = kb.search(&erik, &q("power supply reloads")).await?[0]
        .article_id
        .unwrap_or_default();
    let a = kb.get(&erik, psu).await?;
    let edit = ArticleEdit {
        base_version: a.version,
        title: "Catalyst 9200L reloads: replace the PWR-C5 power supply (zebrafish)".into(),
        symptom: a.symptom.clone(),
        cause: a.cause.clone(),
        resolution: a.resolution.clone(),
        vendor: a.vendor.clone(),
        device_type: a.device_type.clone(),
        model: a.model.clone(),
        firmware: a.firmware.clone(),
    };
    let edited = kb.edit(&erik, psu, &edit).await?;
    assert_eq!(edited.version, a.version + 1);
    assert_eq!(edited.published_version, Some(a.version));
    assert!(kb.search(&erik, &q("zebrafish")).await?.is_empty());
    assert!(kb.search(&erik, &q("power supply reloads")).await?[0]
        .title
        .starts_with("Catalyst 9200L reloads every few hours"));
    // The same edit again starts from a stale version.
    assert!(matches!(
        kb.edit(&erik, psu, &edit).await,
        Err(Error::Conflict(_))
    ));
    kb.submit(&erik, psu).await?;
    let publish = Review {
        decision: Decision::Publish,
        comment: None,
    };
    let done = kb.review(&xavier, psu, &publish).await?;
    assert_eq!(done.published_version, Some(edited.version));
    let hits = kb.search(&erik, &q("zebrafish")).await?;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].article_id, Some(psu));
    // Every version is kept.
    let versions = kb.versions(&erik, psu).await?;
    assert_eq!(versions.len() as i64, edited.version);
    assert!(versions[0]
        .title
        .starts_with("Catalyst 9200L reloads every few hours"));
    // The versions table refuses changes.
    assert!(store
        .execute_raw("UPDATE kb_versions SET title = 'x'")
        .await
        .is_err());
    assert!(store.execute_raw("DELETE FROM kb_versions").await.is_err());
    Ok(())
}
both!(index_follows_cases_and_articles);
