//! `socle serve` and `socle demo`: the HTTP server and its background tasks
//! (retention, demo generator) under one shutdown signal.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{TimeDelta, Utc};
use socle_api::AppState;
use socle_storage::DynStore;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, DemoSection};

pub struct DemoMode {
    pub live: bool,
}

pub async fn open_store(config: &Config) -> anyhow::Result<DynStore> {
    let storage = config.storage();
    let what = match &storage {
        socle_storage::StorageConfig::Sqlite { path } => format!("SQLite database {}", path.display()),
        socle_storage::StorageConfig::Postgres { .. } => "PostgreSQL database".to_owned(),
    };
    socle_storage::open(&storage).await.with_context(|| format!("opening the {what}"))
}

pub async fn serve(config: Config, demo: Option<DemoMode>) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let web = config.web(addr);
    let session_idle = web.session_idle;
    let pipeline = socle_ingestion::Pipeline::new(store.clone(), config.ingestion.pipeline());
    let subscriptions = config
        .mqtt
        .subscriptions
        .iter()
        .map(|s| s.subscription().map(|(sub, org)| (sub, org, s.network)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let notify_config = config.notify(&web);
    let state = AppState::with_settings(store.clone(), web)
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?
        .with_pipeline(pipeline.clone());
    // Tests and scripts read this line to find the port when listening on port 0.
    println!("Socle écoute sur / listens on http://{addr}");
    tracing::info!(%addr, backend = store.backend(), "server started");

    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(retention_loop(
        store.clone(),
        Duration::from_secs(config.retention.interval_minutes.max(1) * 60),
        session_idle,
        config.ingestion.clone(),
        shutdown.clone(),
    ));
    // Downlinks leave through the brokers the uplinks come from: one
    // publishing connection beside each ChirpStack or TTN subscription.
    let mut downlinks = socle_ingestion::DownlinkSender::new(pipeline.clone());
    for (subscription, organisation, network) in &subscriptions {
        if *network != socle_ingestion::mqtt::Network::Generic {
            let publisher = socle_mqtt::Publisher::start(subscription);
            downlinks = downlinks.with_publisher(organisation.clone(), *network, publisher);
        }
    }
    let stop = shutdown.clone();
    tasks.spawn(async move {
        downlinks.run(stop.cancelled_owned()).await;
        Ok(())
    });
    let vapid = socle_notify::Notifier::load_vapid(&store, config.notify.vapid_key_file.as_deref())
        .await
        .context("loading the Web Push (VAPID) key")?;
    let notifier = Arc::new(
        socle_notify::Notifier::new(
            store.clone(),
            notify_config,
            vapid,
            state.notification_visibility(),
            Arc::new(crate::alert_notices::StoredAlertStatus(store.clone())),
        )
        .context("notification settings")?,
    );
    state.set_vapid_public_key(notifier.vapid_public_key());
    let (worker, stop) = (notifier.clone(), shutdown.clone());
    tasks.spawn(async move {
        worker.run(stop).await;
        Ok(())
    });
    // NGSI-LD subscriptions: the matcher consumes the commit feed, the deliverer sends the outbox.
    let subscriptions_config = config.ngsi_subscriptions();
    let (matcher, matcher_task) = socle_ngsi_notify::start(
        store.clone(),
        pipeline.feed(),
        state.ngsi_subscription_visibility(),
        subscriptions_config.clone(),
        shutdown.clone(),
    )
    .await
    .context("starting NGSI-LD subscriptions")?;
    let deliverer = Arc::new(socle_ngsi_notify::Deliverer::new(store.clone(), subscriptions_config, matcher.wake()));
    let stop = shutdown.clone();
    tasks.spawn(async move {
        deliverer.run(stop).await;
        Ok(())
    });
    tasks.spawn(async move {
        matcher_task.await.context("NGSI-LD subscriptions task")?;
        Ok(())
    });
    for (subscription, organisation, network) in subscriptions {
        let ingest = socle_ingestion::mqtt::MqttIngest { pipeline: pipeline.clone(), organisation, network };
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let stats = socle_ingestion::mqtt::run(subscription, ingest, stop.cancelled_owned()).await;
            tracing::info!(?stats, "MQTT subscription stopped");
            Ok(())
        });
    }
    // The demo starts alerting itself once its history is written (it evaluates it).
    if demo.is_none() {
        let (alerting, task) =
            crate::alerting::start(store.clone(), pipeline.feed(), TimeDelta::zero(), shutdown.clone()).await?;
        state.attach_alerting(alerting.clone());
        let forward =
            crate::alert_notices::forward(store.clone(), notifier.clone(), alerting.subscribe(), shutdown.clone());
        tasks.spawn(async move {
            forward.await;
            Ok(())
        });
        tasks.spawn(async move {
            task.await.context("alerting task")?;
            Ok(())
        });
    }
    if let Some(mode) = demo {
        println!("Démo : http://{addr}/api/v1/organisations — documentation de l'API : http://{addr}/api/openapi.json");
        println!("Connexion / sign in: http://{addr}/connexion");
        let demo = DemoRun {
            store: store.clone(),
            metrics: state.metrics.clone(),
            server: addr,
            feed: pipeline.feed().clone(),
            notifier: notifier.clone(),
            api: state.clone(),
            settings: config.demo.clone(),
            mode,
            broker: config.mqtt.subscriptions.first().map(|m| (m.host.clone(), m.port)),
        };
        tasks.spawn(run_demo(demo, shutdown.clone()));
    }
    let signal_token = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight requests and writes");
        signal_token.cancel();
    });
    socle_api::serve(listener, state, shutdown.clone().cancelled_owned()).await.context("HTTP server")?;
    shutdown.cancel();
    while let Some(res) = tasks.join_next().await {
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = format!("{e:#}"), "background task failed"),
            Err(e) => tracing::error!(error = %e, "background task panicked"),
        }
    }
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn retention_loop(
    store: DynStore,
    every: Duration,
    session_idle: Duration,
    ingestion: crate::config::IngestionSection,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {
                match store.apply_retention(Utc::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "retention applied"),
                    Err(e) => tracing::warn!(error = %e, "retention failed; will retry"),
                }
                // Ended sessions, used or expired reset links, abandoned OpenID sign-ins.
                let now = Utc::now();
                let idle_before = now - chrono::Duration::from_std(session_idle).unwrap_or(chrono::Duration::hours(12));
                match store.purge_expired_sign_ins(now, idle_before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "expired sign-in records purged"),
                    Err(e) => tracing::warn!(error = %e, "purging sign-in records failed; will retry"),
                }
                // NGSI-LD notifications delivered or given up a week ago (the
                // matcher's replay margin is far shorter, so no id can come back).
                match store.purge_ngsi_notifications(now - chrono::Duration::days(7)).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "old NGSI-LD notifications purged"),
                    Err(e) => tracing::warn!(error = %e, "purging NGSI-LD notifications failed; will retry"),
                }
                // Frame identities and dead letters past their keeping time.
                let days = |d: u32| chrono::Duration::days(i64::from(d.max(1)));
                let (frames_before, letters_before) =
                    (now - days(ingestion.frames_days), now - days(ingestion.dead_letters_days));
                match store.purge_ingestion(frames_before, letters_before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "old frame identities and dead letters purged"),
                    Err(e) => tracing::warn!(error = %e, "purging ingestion records failed; will retry"),
                }
            }
        }
    }
}

/// What the demo runs with.
struct DemoRun {
    store: DynStore,
    metrics: Arc<socle_api::Metrics>,
    /// This server, which the live uplinks are posted to.
    server: std::net::SocketAddr,
    feed: socle_storage::CommitFeed,
    notifier: Arc<socle_notify::Notifier>,
    /// The server's state, to attach the alerting service once it starts.
    api: AppState,
    settings: DemoSection,
    mode: DemoMode,
    /// The first configured MQTT broker, where the demo's NGSI-LD subscription publishes.
    broker: Option<(String, u16)>,
}

async fn run_demo(demo: DemoRun, shutdown: CancellationToken) -> anyhow::Result<()> {
    let DemoRun { store, metrics, server, feed, notifier, api, settings, mode, broker } = demo;
    let work = async {
        let now = Utc::now();
        let territory = socle_demo::setup(&store, now).await.context("creating the demo territory")?;
        crate::demo_accounts::create(&store).await.context("creating the demo accounts")?;
        crate::demo_subscriptions::create(&store, broker.as_ref().map(|(h, p)| (h.as_str(), *p)))
            .await
            .context("creating the demo NGSI-LD subscription")?;
        let datasets = crate::demo_opendata::create(&store).await.context("creating the demo datasets")?;
        tracing::info!(datasets, "demo open data ready");
        let context = crate::demo_ngsi::create(&store, &api.web.settings.public_url)
            .await
            .context("hosting the demo's NGSI-LD context")?;
        tracing::info!(%context, "demo NGSI-LD context hosted");
        tracing::info!(entities = territory.entities.len(), "demo territory ready; writing history");
        let report =
            socle_demo::backfill(&store, &territory, now, settings.history_days).await.context("demo history")?;
        tracing::info!(?report, "demo history written");
        // Last year's daily points come after the recent ones: they stop where the hourly history starts.
        let last_year =
            socle_demo::backfill_last_year(&store, &territory, now).await.context("demo history of last year")?;
        metrics.record_write(socle_domain::WriteOutcome { stored: last_year, ..Default::default() });
        metrics.record_write(report.outcome);
        anyhow::Ok((Arc::new(territory), report.until))
    };
    // Dropping the backfill between two batches is safe: each batch is one transaction.
    let (territory, since) = tokio::select! {
        () = shutdown.cancelled() => return Ok(()),
        t = work => t?,
    };
    let added = crate::alerting::demo_rules(&store, &territory).await?;
    // A month of history is evaluated by the engine at the first start (the flood
    // was 20 days ago); later starts continue from the saved state.
    let lookback = TimeDelta::days(i64::from(settings.history_days).min(30));
    // Evaluating the month takes a while: the demo is usable meanwhile, and live
    // batches committed before the service subscribes are in the stored history
    // it reads.
    let alerting_task = {
        let (store, feed, shutdown) = (store.clone(), feed.clone(), shutdown.clone());
        tokio::spawn(async move {
            let (alerting, task) = crate::alerting::start(store.clone(), &feed, lookback, shutdown.clone()).await?;
            api.attach_alerting(alerting.clone());
            tokio::spawn(crate::alert_notices::forward(store.clone(), notifier, alerting.subscribe(), shutdown));
            if added > 0 {
                crate::alerting::demo_lifecycle(&store, &alerting).await.context("demo alert lifecycle")?;
            }
            println!("Alertes de la démo évaluées / demo alerts evaluated over its history");
            task.await.context("alerting task")?;
            anyhow::Ok(())
        })
    };
    println!("Démo prête / demo ready: history written, live observations every {} s", settings.live_interval_secs);
    if !mode.live {
        shutdown.cancelled().await;
        alerting_task.await.context("alerting task")??;
        return Ok(());
    }
    let sink = crate::demo_live::UplinkSink::new(&store, server, territory.devices())
        .await
        .context("preparing the demo's live uplinks")?;
    let every = Duration::from_secs(settings.live_interval_secs.max(1));
    let report = socle_demo::run_live(sink, territory, since, every, shutdown.cancelled_owned()).await;
    tracing::info!(?report, "demo live generation stopped");
    alerting_task.await.context("alerting task")??;
    Ok(())
}

pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    println!("Base à jour / database up to date ({})", store.backend());
    Ok(())
}

pub async fn check(config: &Config) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let report = store.check_consistency().await.context("checking rollups")?;
    println!(
        "{} séries, {} agrégats vérifiés / series and rollup buckets checked: {} problems",
        report.series_checked,
        report.buckets_checked,
        report.problems.len()
    );
    for p in report.problems.iter().take(50) {
        println!("  {} {} {}: {}", p.entity, p.attribute, p.bucket.to_rfc3339(), p.what);
    }
    if report.problems.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{} inconsistencies found", report.problems.len())
    }
}
