//! `socle device …`, `socle codec test` and `socle import observations`:
//! the ingestion side of the command line.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use socle_domain::{
    AttributeName, AuditEntry, EntityId, Observation, ObservedValue, OrganisationId, UnitCode, WriteOutcome,
};
use socle_ingest::codec;
use socle_ingestion::registry;
use socle_storage::{DeviceFilter, DynStore, StoreError};

use crate::config::Config;
use crate::server::open_store;

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Import devices and their mappings from a CSV file (one row per mapping;
    /// columns dev_eui, name, model, organisation, entity, field, attribute,
    /// unit, kind, scale, offset, expression, min, max).
    Import {
        file: PathBuf,
        /// The organisation every device of the file must belong to.
        #[arg(long)]
        org: String,
        /// Check the file and report, import nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List devices with their health.
    List {
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum CodecCommand {
    /// Run the test vectors of the built-in codecs (or of one model); fails if any vector fails.
    Test { model: Option<String> },
}

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Import historical observations from a CSV file with the columns
    /// entity, attribute, observedAt, value and (optional) unitCode. Resumable:
    /// a rerun on the same file continues after the last committed batch.
    Observations(ObservationsArgs),
}

#[derive(Args)]
pub struct ObservationsArgs {
    file: PathBuf,
    /// Observations written per transaction.
    #[arg(long, default_value_t = 5000)]
    batch: usize,
    /// Where refused lines are reported (default: FILE.errors.csv).
    #[arg(long)]
    errors: Option<PathBuf>,
}

async fn audit(store: &DynStore, org: &OrganisationId, action: &str, detail: &str) -> anyhow::Result<()> {
    store
        .append_audit(&AuditEntry {
            at: Utc::now(),
            actor: "system:cli".into(),
            organisation: Some(org.clone()),
            action: action.into(),
            object: "devices".into(),
            detail: detail.into(),
        })
        .await?;
    Ok(())
}

pub async fn device(config: &Config, command: DeviceCommand) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match command {
        DeviceCommand::Import { file, org, dry_run } => {
            let org = OrganisationId::parse(&org)?;
            store.organisation(&org).await?.context("no such organisation")?;
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let read = socle_ingest::import_csv(&bytes);
            let mut errors: Vec<String> = read.errors.iter().map(ToString::to_string).collect();
            let mut devices = Vec::new();
            for d in read.devices {
                let problem = if d.organisation != org {
                    Some(format!("belongs to {}, not {org}", d.organisation))
                } else if let Err(e) = registry::validate(&d) {
                    Some(e.0)
                } else {
                    match store.entity(&d.entity).await? {
                        Some(e) if e.organisation == org => None,
                        _ => Some(format!("entity {} does not exist in {org}", d.entity)),
                    }
                };
                match problem {
                    Some(p) => errors.push(format!("device {}: {p}", d.dev_eui)),
                    None => devices.push(d),
                }
            }
            for e in &errors {
                eprintln!("{e}");
            }
            if read.more_errors > 0 {
                eprintln!("… and {} more errors", read.more_errors);
            }
            if !dry_run && !devices.is_empty() {
                let rows: Vec<_> = devices.iter().map(registry::to_new).collect();
                store.upsert_devices(&rows).await.context("storing the devices")?;
                audit(&store, &org, "device.import", &format!("{} devices", rows.len())).await?;
            }
            let verb = if dry_run { "lus sans erreur / read without error" } else { "importés / imported" };
            println!("{} capteurs {verb}, {} erreurs / errors", devices.len(), errors.len() + read.more_errors);
            if !errors.is_empty() {
                bail!("{} lines or devices refused", errors.len() + read.more_errors);
            }
        }
        DeviceCommand::List { org } => {
            let organisations = org.as_deref().map(OrganisationId::parse).transpose()?.map(|o| vec![o]);
            let mut offset = 0;
            loop {
                let filter = DeviceFilter { organisations: organisations.clone(), entity: None, limit: 1000, offset };
                let page = store.list_devices(&filter).await?;
                for r in &page.items {
                    let d = &r.device;
                    let h = &r.health;
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        d.dev_eui,
                        d.organisation,
                        d.name,
                        d.model,
                        d.entity,
                        h.last_seen.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into()),
                        h.battery.map(|b| format!("{b}%")).unwrap_or_else(|| "-".into()),
                        h.frames_received
                    );
                }
                offset += page.items.len() as u64;
                if page.items.is_empty() || offset >= page.total {
                    break;
                }
            }
        }
    }
    Ok(())
}

pub fn codec(command: CodecCommand) -> anyhow::Result<()> {
    let CodecCommand::Test { model } = command;
    let codecs = match &model {
        Some(m) => vec![codec::builtin(m).with_context(|| {
            let known: Vec<&str> = codec::BUILTIN.iter().map(|(m, _, _)| *m).collect();
            format!("no codec for model {m:?}; built-in models: {}", known.join(", "))
        })?],
        None => codec::builtins(),
    };
    let mut failed = 0;
    for c in &codecs {
        let report = codec::run_vectors(c);
        print!("{report}");
        if !report.ok() {
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} of {} codecs failed their test vectors", codecs.len());
    }
    println!("{} codecs, all vectors passed", codecs.len());
    Ok(())
}

pub async fn import(config: &Config, command: ImportCommand) -> anyhow::Result<()> {
    let ImportCommand::Observations(args) = command;
    let store = open_store(config).await?;
    import_observations(&store, &args).await
}

/// One parsed line, with where it ends in the file.
struct Line {
    number: u64,
    observation: Observation,
}

/// The header's columns.
struct Columns {
    entity: usize,
    attribute: usize,
    observed_at: usize,
    value: usize,
    unit: Option<usize>,
}

fn columns(header: &csv::StringRecord) -> anyhow::Result<Columns> {
    let find = |name: &str| header.iter().position(|h| h.trim().eq_ignore_ascii_case(name));
    for h in header.iter() {
        if !["entity", "attribute", "observedat", "value", "unitcode"].contains(&h.trim().to_ascii_lowercase().as_str())
        {
            bail!("unknown column {h:?}: expected entity, attribute, observedAt, value, unitCode");
        }
    }
    let need = |name: &str| find(name).with_context(|| format!("column {name} is missing"));
    Ok(Columns {
        entity: need("entity")?,
        attribute: need("attribute")?,
        observed_at: need("observedAt")?,
        value: need("value")?,
        unit: find("unitCode"),
    })
}

fn parse_line(r: &csv::StringRecord, c: &Columns, decimal_comma: bool) -> Result<Observation, String> {
    let get = |i: usize| r.get(i).map(str::trim).unwrap_or_default();
    let entity = EntityId::parse(get(c.entity)).map_err(|e| format!("entity: {e}"))?;
    let attribute = AttributeName::parse(get(c.attribute)).map_err(|e| format!("attribute: {e}"))?;
    let observed_at = DateTime::parse_from_rfc3339(get(c.observed_at))
        .map_err(|e| format!("observedAt: {:?} is not an RFC 3339 instant with offset ({e})", get(c.observed_at)))?
        .with_timezone(&Utc);
    let raw = get(c.value);
    if raw.is_empty() {
        return Err("value: empty".into());
    }
    let numeric = if decimal_comma { raw.replace(',', ".") } else { raw.to_owned() };
    let value = match numeric.parse::<f64>() {
        Ok(v) => ObservedValue::number(v).map_err(|_| format!("value: {raw:?} is not a finite number"))?,
        Err(_) if raw.chars().count() <= 1024 => ObservedValue::Text(raw.to_owned()),
        Err(_) => return Err("value: text longer than 1024 characters".into()),
    };
    let unit_code = match c.unit.map(get).filter(|u| !u.is_empty()) {
        Some(u) => Some(UnitCode::parse(u).map_err(|e| format!("unitCode: {e}"))?),
        None => None,
    };
    Ok(Observation { entity, attribute, observed_at, value, unit_code })
}

/// The meta key under which the progress of this very file is kept: its
/// path, size and modification time, so an edited file starts over.
fn progress_key(path: &Path, file: &File) -> anyhow::Result<String> {
    let meta = file.metadata()?;
    let mtime = meta.modified().ok().and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok()).unwrap_or_default();
    let canonical = std::fs::canonicalize(path)?;
    Ok(format!("import.observations:{}:{}:{}", canonical.display(), meta.len(), mtime.as_millis()))
}

struct Report {
    file: File,
    path: PathBuf,
    count: u64,
}

impl Report {
    fn line(&mut self, line: u64, message: &str) -> anyhow::Result<()> {
        let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
        w.write_record([line.to_string().as_str(), message])?;
        self.file.write_all(&w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
        self.count += 1;
        Ok(())
    }
}

async fn import_observations(store: &DynStore, args: &ObservationsArgs) -> anyhow::Result<()> {
    let path = &args.file;
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata()?.len();
    let key = progress_key(path, &file)?;
    let resume_at: u64 = store.get_meta(&key).await?.and_then(|v| v.parse().ok()).unwrap_or(0);

    // The header (and the delimiter it shows) is always read from the start.
    let mut first = String::new();
    BufReader::new(&mut file).read_line_bounded(&mut first)?;
    let first = first.trim_start_matches('\u{feff}');
    let delimiter = if first.matches(';').count() > first.matches(',').count() { b';' } else { b',' };
    let decimal_comma = delimiter == b';';
    file.seek(SeekFrom::Start(0))?;
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).flexible(true).from_reader(BufReader::new(file));
    let header = reader.headers()?.clone();
    let cols = columns(&header)?;
    let header_end = reader.position().byte();
    let start = resume_at.max(header_end);
    if start >= size {
        println!("{} : déjà importé / already imported", path.display());
        return Ok(());
    }
    // Restart the reader at the first line not yet committed.
    let mut file = reader.into_inner().into_inner();
    file.seek(SeekFrom::Start(start))?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(BufReader::new(file));
    // The file's line number of the reader's first line (1 + newlines before `start`).
    let first_line = count_lines(path, start)?;

    let errors_path = args.errors.clone().unwrap_or_else(|| {
        let mut p = path.as_os_str().to_owned();
        p.push(".errors.csv");
        PathBuf::from(p)
    });
    let report_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&errors_path)
        .with_context(|| format!("opening {}", errors_path.display()))?;
    let mut report = Report { file: report_file, path: errors_path, count: 0 };
    if resume_at > header_end {
        eprintln!("reprise à l'octet {start} / resuming at byte {start} of {size}");
    }

    let mut known: HashMap<EntityId, bool> = HashMap::new();
    let mut batch: Vec<Line> = Vec::with_capacity(args.batch.max(1));
    let mut total = WriteOutcome::default();
    let mut lines = 0u64;
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut record = csv::StringRecord::new();
    loop {
        let more = match reader.read_record(&mut record) {
            Ok(more) => more,
            Err(e) => {
                // A malformed line: reported, and the reader goes on with the next.
                let line = e.position().map_or(1, |p| p.line()) - 1 + first_line;
                report.line(line, &format!("unreadable line: {e}"))?;
                continue;
            }
        };
        let end = start + reader.position().byte();
        if more {
            lines += 1;
            let number = record.position().map_or(1, |p| p.line()) - 1 + first_line;
            if record.iter().all(|f| f.trim().is_empty()) {
                continue;
            }
            match parse_line(&record, &cols, decimal_comma) {
                Ok(o) => match entity_known(store, &mut known, &o.entity).await? {
                    true => batch.push(Line { number, observation: o }),
                    false => report.line(number, &format!("entity {} does not exist", o.entity))?,
                },
                Err(e) => report.line(number, &e)?,
            }
        }
        if batch.len() >= args.batch.max(1) || !more {
            total += write_batch(store, &batch, &mut report).await?;
            batch.clear();
            // Everything up to `end` is committed (or reported): a rerun starts
            // there. A crash before this line makes the rerun write the batch
            // again, which stores nothing twice (same series, same instants).
            store.set_meta(&key, &end.to_string()).await?;
        }
        if !more || last_progress.elapsed() > Duration::from_millis(500) {
            let pct = if size > 0 { end as f64 * 100.0 / size as f64 } else { 100.0 };
            let rate = lines as f64 / started.elapsed().as_secs_f64().max(0.001);
            eprint!(
                "\r{pct:5.1} %  {lines} lignes/lines  {} enregistrées/stored  {} doublons/duplicates  {} erreurs/errors  {rate:.0} lignes/s ",
                total.stored, total.duplicates, report.count
            );
            last_progress = Instant::now();
        }
        if !more {
            break;
        }
    }
    eprintln!();
    println!(
        "{} observations enregistrées / stored, {} doublons / duplicates, {} lignes refusées / lines refused",
        total.stored, total.duplicates, report.count
    );
    if report.count > 0 {
        eprintln!("lignes refusées / refused lines: {}", report.path.display());
        bail!("{} lines refused (see {})", report.count, report.path.display());
    }
    Ok(())
}

async fn entity_known(store: &DynStore, known: &mut HashMap<EntityId, bool>, id: &EntityId) -> anyhow::Result<bool> {
    if let Some(k) = known.get(id) {
        return Ok(*k);
    }
    let exists = store.entity(id).await?.is_some();
    if known.len() > 100_000 {
        known.clear();
    }
    known.insert(id.clone(), exists);
    Ok(exists)
}

/// Writes a batch in one transaction; if the batch is refused for its
/// content, writes its lines one by one so only the bad ones are reported.
async fn write_batch(store: &DynStore, batch: &[Line], report: &mut Report) -> anyhow::Result<WriteOutcome> {
    if batch.is_empty() {
        return Ok(WriteOutcome::default());
    }
    let all: Vec<Observation> = batch.iter().map(|l| l.observation.clone()).collect();
    match store.write_observations(&all).await {
        Ok(o) => Ok(o),
        Err(e) if e.is_client_error() => {
            let mut total = WriteOutcome::default();
            for l in batch {
                match store.write_observations(std::slice::from_ref(&l.observation)).await {
                    Ok(o) => total += o,
                    Err(e @ (StoreError::ValueKindMismatch { .. } | StoreError::UnknownEntity(_))) => {
                        report.line(l.number, &e.to_string())?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(total)
        }
        Err(e) => Err(e.into()),
    }
}

/// The line number of byte `offset` (counting from 1).
fn count_lines(path: &Path, offset: u64) -> anyhow::Result<u64> {
    let mut f = File::open(path)?.take(offset);
    let mut buf = [0u8; 64 * 1024];
    let mut n = 1;
    loop {
        let read = f.read(&mut buf)?;
        if read == 0 {
            return Ok(n);
        }
        n += buf[..read].iter().filter(|b| **b == b'\n').count() as u64;
    }
}

trait ReadLineBounded {
    fn read_line_bounded(&mut self, out: &mut String) -> std::io::Result<()>;
}

impl<R: Read> ReadLineBounded for BufReader<R> {
    /// The first line, at most 64 KiB of it.
    fn read_line_bounded(&mut self, out: &mut String) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for byte in self.bytes().take(64 * 1024) {
            let b = byte?;
            if b == b'\n' {
                break;
            }
            buf.push(b);
        }
        out.push_str(&String::from_utf8_lossy(&buf));
        Ok(())
    }
}
