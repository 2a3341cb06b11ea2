//! list_connectors: paging, search, filters and sort orders.

use serde_json::json;
use tether_domain::connector::ConnectivityState;
use tether_domain::ConnectivityStatus;
use tether_store::{ConnectorQuery, ConnectorSort, DEFAULT_LIMIT, MAX_LIMIT};

use crate::common::*;

both_backends!(paging_search_filters_and_sort);

fn ids(page: &tether_store::Page<tether_store::ConnectorRecord>) -> Vec<String> {
    page.items
        .iter()
        .map(|r| r.identifier().to_string())
        .collect()
}

async fn paging_search_filters_and_sort(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    let p = project();
    secret(s, &p, "tok", "t").await;
    secret(s, &p, "pw", "p").await;
    // 35 connectors: names "Cluster 00".."Cluster 34", created in order, a few
    // of other kinds and with odd names for search.
    for i in 0..35 {
        let name = format!("Cluster {i:02}");
        let c = if i % 5 == 0 {
            connector(&p, &name, None, json!({"type": "InheritFromDelegate"}))
        } else if i % 5 == 1 {
            connector(
                &p,
                &name,
                None,
                manual(
                    "UsernamePassword",
                    json!({"username": "u", "passwordRef": "pw"}),
                ),
            )
        } else {
            sa_connector(&p, &name, None, "tok")
        };
        s.create_connector(c).await.unwrap();
    }
    s.create_connector(sa_connector(&p, "prod_eu 100", Some("weird"), "tok"))
        .await
        .unwrap();
    s.create_connector(sa_connector(&p, "prodXeu", Some("plain"), "tok"))
        .await
        .unwrap();
    // Another scope's connectors never show up.
    s.create_connector(connector(
        &org(),
        "Cluster 99",
        None,
        json!({"type": "InheritFromDelegate"}),
    ))
    .await
    .unwrap();

    // Defaults: 30 per page, by name.
    let first = s
        .list_connectors(&p, ConnectorQuery::default())
        .await
        .unwrap();
    assert_eq!(
        (first.total, first.limit, first.page),
        (37, DEFAULT_LIMIT, 0)
    );
    assert_eq!(first.items.len(), 30);
    assert_eq!(ids(&first)[..3], ["Cluster_00", "Cluster_01", "Cluster_02"]);
    let second = s
        .list_connectors(
            &p,
            ConnectorQuery {
                page: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(second.items.len(), 7);
    // "prod_eu 100" sorts before "prodxeu".
    assert_eq!(ids(&second)[5..], ["weird", "plain"]);
    let beyond = s
        .list_connectors(
            &p,
            ConnectorQuery {
                page: 9,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(beyond.items.is_empty());
    assert_eq!(beyond.total, 37);
    // Pages never overlap and cover everything.
    let mut all = Vec::new();
    for page in 0..8 {
        let pg = s
            .list_connectors(
                &p,
                ConnectorQuery {
                    page,
                    limit: Some(5),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        all.extend(ids(&pg));
    }
    let mut dedup = all.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!((all.len(), dedup.len()), (37, 37));
    // Limits are clamped.
    let big = s
        .list_connectors(
            &p,
            ConnectorQuery {
                limit: Some(5000),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((big.limit, big.items.len()), (MAX_LIMIT, 37));
    let tiny = s
        .list_connectors(
            &p,
            ConnectorQuery {
                limit: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tiny.items.len(), 1);

    // Search: case-insensitive substring of name or identifier; `_` and `%`
    // are literal characters, not wildcards.
    let search = |q: &str| ConnectorQuery {
        search: Some(q.into()),
        ..Default::default()
    };
    assert_eq!(
        s.list_connectors(&p, search("CLUSTER 3"))
            .await
            .unwrap()
            .total,
        5
    );
    assert_eq!(
        ids(&s.list_connectors(&p, search("D_E")).await.unwrap()),
        ["weird"]
    );
    assert_eq!(s.list_connectors(&p, search("%")).await.unwrap().total, 0);
    assert_eq!(s.list_connectors(&p, search("\\")).await.unwrap().total, 0);
    assert_eq!(
        ids(&s.list_connectors(&p, search("PLAI")).await.unwrap()),
        ["plain"]
    );
    assert_eq!(
        s.list_connectors(&p, search("cluster_1"))
            .await
            .unwrap()
            .total,
        10
    );

    // Filters.
    let q = ConnectorQuery {
        credential_type: Some("InheritFromDelegate".into()),
        ..Default::default()
    };
    assert_eq!(s.list_connectors(&p, q).await.unwrap().total, 7);
    let q = ConnectorQuery {
        auth_type: Some("UsernamePassword".into()),
        ..Default::default()
    };
    assert_eq!(s.list_connectors(&p, q).await.unwrap().total, 7);
    let q = ConnectorQuery {
        // Type names match without case.
        auth_type: Some("serviceaccount".into()),
        search: Some("cluster".into()),
        ..Default::default()
    };
    assert_eq!(s.list_connectors(&p, q).await.unwrap().total, 21);
    for id in ["Cluster_03", "weird"] {
        s.set_connectivity(
            &p,
            id,
            ConnectivityStatus {
                status: ConnectivityState::Failure,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let q = ConnectorQuery {
        status: Some(ConnectivityState::Failure),
        ..Default::default()
    };
    assert_eq!(
        ids(&s.list_connectors(&p, q).await.unwrap()),
        ["Cluster_03", "weird"]
    );
    let q = ConnectorQuery {
        status: Some(ConnectivityState::Unknown),
        ..Default::default()
    };
    assert_eq!(s.list_connectors(&p, q).await.unwrap().total, 35);

    // Sort orders.
    let sorted = |sort, desc| ConnectorQuery {
        sort,
        desc,
        limit: Some(3),
        ..Default::default()
    };
    assert_eq!(
        ids(&s
            .list_connectors(&p, sorted(ConnectorSort::Name, true))
            .await
            .unwrap()),
        ["plain", "weird", "Cluster_34"]
    );
    assert_eq!(
        ids(&s
            .list_connectors(&p, sorted(ConnectorSort::Created, true))
            .await
            .unwrap()),
        ["plain", "weird", "Cluster_34"]
    );
    assert_eq!(
        ids(&s
            .list_connectors(&p, sorted(ConnectorSort::Created, false))
            .await
            .unwrap()),
        ["Cluster_00", "Cluster_01", "Cluster_02"]
    );
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let mut c = s.get_connector(&p, "Cluster_10").await.unwrap().connector;
    c.description = Some("touched".into());
    s.update_connector(&p, "Cluster_10", c).await.unwrap();
    assert_eq!(
        ids(&s
            .list_connectors(&p, sorted(ConnectorSort::Updated, true))
            .await
            .unwrap())[0],
        "Cluster_10"
    );
    assert_eq!(
        ids(&s
            .list_connectors(&p, sorted(ConnectorSort::Updated, false))
            .await
            .unwrap())[0],
        "Cluster_00"
    );
}
