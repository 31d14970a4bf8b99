//! The alert pages of the hypervisor: the list (`/alertes`, with filters), one
//! alert (`/alertes/{id}`: what, where, since when, last value, history, and
//! the acknowledge/resolve/assign/comment forms), and the rules (`/regles`,
//! `/regles/{id}`: the definition, a preview of the last 30 days before
//! saving). What each person sees and may do is the policy's (`policy/alerts.rs`).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use socle_storage::{AlertAction, AlertRecord};

use super::{chrome, html, internal, message, see_other, urlencode, Chrome};
use crate::i18n::Lang;
use crate::policy::{AlertError, AlertView};
use crate::routes::alerts::{alert_query, parse_rule, AlertParams};
use crate::{AppState, Caller};

use super::rule_form::{self, FormWords, RuleFields};

/// Words of the alert pages, French first.
pub struct AlertWords {
    pub title: &'static str,
    pub filters: &'static str,
    pub status: &'static str,
    pub severity: &'static str,
    pub domain: &'static str,
    pub all: &'static str,
    pub apply: &'static str,
    pub none: &'static str,
    pub what: &'static str,
    pub place: &'static str,
    pub since: &'static str,
    pub value: &'static str,
    pub count: &'static str,
    pub on_map: &'static str,
    pub history: &'static str,
    pub assignee: &'static str,
    pub nobody: &'static str,
    pub acknowledge: &'static str,
    pub resolve: &'static str,
    pub resolve_note: &'static str,
    pub assign: &'static str,
    pub comment: &'static str,
    pub comment_label: &'static str,
    pub read_only: &'static str,
    pub rule: &'static str,
    pub rules: &'static str,
    pub rule_definition: &'static str,
    pub preview: &'static str,
    pub save: &'static str,
    pub preview_result: &'static str,
    pub preview_alerts: &'static str,
    pub preview_resolved: &'static str,
    pub preview_open: &'static str,
    pub preview_entities: &'static str,
    pub preview_readings: &'static str,
    pub engine: &'static str,
    pub enabled: &'static str,
    pub new_rule: &'static str,
    pub saved: &'static str,
    pub rule_hint: &'static str,
    pub open_alerts: &'static str,
    pub push_button: &'static str,
    pub push_working: &'static str,
    pub push_done: &'static str,
    pub push_failed: &'static str,
    pub push_unsupported: &'static str,
}

pub const FR: AlertWords = AlertWords {
    title: "Alertes",
    filters: "Filtres",
    status: "État",
    severity: "Gravité",
    domain: "Domaine",
    all: "Tous",
    apply: "Filtrer",
    none: "Aucune alerte ne correspond.",
    what: "Quoi",
    place: "Où",
    since: "Depuis",
    value: "Dernière valeur",
    count: "alertes",
    on_map: "Voir sur la carte",
    history: "Historique",
    assignee: "Responsable",
    nobody: "Personne",
    acknowledge: "Prendre en compte",
    resolve: "Clore l'alerte",
    resolve_note: "Motif de clôture (facultatif)",
    assign: "Affecter",
    comment: "Commenter",
    comment_label: "Commentaire",
    read_only: "Vous pouvez consulter cette alerte ; seuls les agents et administrateurs de la collectivité agissent dessus.",
    rule: "Règle",
    rules: "Règles d'alerte",
    rule_definition: "Définition de la règle (JSON)",
    preview: "Aperçu sur 30 jours",
    save: "Enregistrer",
    preview_result: "Sur les 30 derniers jours, cette règle aurait ouvert",
    preview_alerts: "alerte(s)",
    preview_resolved: "close(s) d'elle-même",
    preview_open: "encore ouverte(s)",
    preview_entities: "équipement(s) surveillé(s)",
    preview_readings: "mesure(s) lue(s)",
    engine: "moteur",
    enabled: "active",
    new_rule: "Nouvelle règle",
    saved: "Règle enregistrée.",
    rule_hint: "Types de condition : threshold (seuil avec hystérésis et durée minimale), silence, batteryLow, rate (vitesse de variation), leak (débit de nuit), fill (remplissage), occupancy (hors calendrier d'occupation).",
    open_alerts: "Alertes en cours",
    push_button: "Recevoir les alertes sur ce téléphone",
    push_working: "Inscription en cours…",
    push_done: "Ce téléphone recevra les alertes.",
    push_failed: "L'inscription n'a pas abouti",
    push_unsupported: "Ce navigateur ne reçoit pas de notifications.",
};

pub const EN: AlertWords = AlertWords {
    title: "Alerts",
    filters: "Filters",
    status: "Status",
    severity: "Severity",
    domain: "Domain",
    all: "All",
    apply: "Filter",
    none: "No alert matches.",
    what: "What",
    place: "Where",
    since: "Since",
    value: "Last value",
    count: "alerts",
    on_map: "Show on the map",
    history: "History",
    assignee: "In charge",
    nobody: "Nobody",
    acknowledge: "Acknowledge",
    resolve: "Resolve the alert",
    resolve_note: "Why it is closed (optional)",
    assign: "Assign",
    comment: "Comment",
    comment_label: "Comment",
    read_only: "You may read this alert; only the authority's agents and administrators act on it.",
    rule: "Rule",
    rules: "Alert rules",
    rule_definition: "Rule definition (JSON)",
    preview: "Preview over 30 days",
    save: "Save",
    preview_result: "Over the last 30 days, this rule would have opened",
    preview_alerts: "alert(s)",
    preview_resolved: "resolved by itself",
    preview_open: "still open",
    preview_entities: "piece(s) of equipment watched",
    preview_readings: "reading(s)",
    engine: "engine",
    enabled: "enabled",
    new_rule: "New rule",
    saved: "Rule saved.",
    rule_hint: "Condition types: threshold (with hysteresis and minimum duration), silence, batteryLow, rate (rate of change), leak (night flow), fill (filling level), occupancy (outside an occupancy calendar).",
    open_alerts: "Open alerts",
    push_button: "Receive alerts on this phone",
    push_working: "Subscribing…",
    push_done: "This phone will receive the alerts.",
    push_failed: "Subscribing failed",
    push_unsupported: "This browser does not receive notifications.",
};

pub fn words(lang: &str) -> &'static AlertWords {
    if lang == "en" {
        &EN
    } else {
        &FR
    }
}

fn status_label(s: &str, lang: &str) -> &'static str {
    match (s, lang == "en") {
        ("open", false) => "ouverte",
        ("acknowledged", false) => "prise en compte",
        ("resolved", false) => "close",
        ("open", true) => "open",
        ("acknowledged", true) => "acknowledged",
        (_, true) => "resolved",
        _ => "close",
    }
}

fn severity_label(s: &str, lang: &str) -> String {
    let sev = socle_rules::Severity::ALL.into_iter().find(|v| v.as_str() == s);
    match (sev, lang == "en") {
        (Some(v), false) => v.label_fr().to_owned(),
        _ => s.to_owned(),
    }
}

/// The time zone of each organisation: an alert's times are read in its
/// organisation's local time (a technician in Saint-Denis de La Réunion reads
/// Réunion time), Europe/Paris when the organisation is unknown.
pub struct Zones(std::collections::HashMap<socle_domain::OrganisationId, chrono_tz::Tz>);

impl Zones {
    pub async fn load(state: &AppState) -> Result<Self, socle_storage::StoreError> {
        Ok(Self(state.organisations().await?.into_iter().map(|o| (o.id, o.timezone)).collect()))
    }

    pub fn of(&self, org: &socle_domain::OrganisationId) -> chrono_tz::Tz {
        self.0.get(org).copied().unwrap_or(chrono_tz::Europe::Paris)
    }
}

/// A local date and time, as people of the organisation read their clock.
fn when(t: chrono::DateTime<chrono::Utc>, tz: chrono_tz::Tz, lang: &str) -> String {
    let local = t.with_timezone(&tz);
    match lang {
        "fr" => local.format("%d/%m/%Y %H:%M").to_string(),
        _ => local.format("%Y-%m-%d %H:%M").to_string(),
    }
}

/// One line of an alert list.
pub struct AlertRow {
    pub href: String,
    pub message: String,
    pub entity_href: String,
    pub entity: String,
    pub severity: String,
    pub severity_key: String,
    pub status: &'static str,
    pub since: String,
    pub value: String,
}

pub fn row(a: &AlertRecord, name: Option<&str>, zones: &Zones, lang: &str) -> AlertRow {
    AlertRow {
        href: format!("/alertes/{}", a.id),
        message: if lang == "en" { a.message_en.clone() } else { a.message_fr.clone() },
        entity_href: format!("/entites/{}", urlencode(a.entity.as_str())),
        entity: name.map_or_else(|| a.entity.to_string(), str::to_owned),
        severity: severity_label(&a.severity, lang),
        severity_key: a.severity.clone(),
        status: status_label(a.status.as_str(), lang),
        since: when(a.since, zones.of(&a.organisation), lang),
        value: a
            .value
            .map(|v| {
                let v = format!("{}", (v * 100.0).round() / 100.0);
                if lang == "en" {
                    v
                } else {
                    v.replace('.', ",")
                }
            })
            .unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    c: Chrome,
    w: &'static AlertWords,
    rows: Vec<AlertRow>,
    total: u64,
    status: String,
    severity: String,
    domain: String,
    entity: String,
    statuses: Vec<(&'static str, &'static str)>,
    severities: Vec<(&'static str, String)>,
    domains: Vec<(&'static str, &'static str)>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct AlertFilterForm {
    statut: Option<String>,
    gravite: Option<String>,
    domaine: Option<String>,
    entite: Option<String>,
    organisation: Option<String>,
}

/// `/alertes`: the alerts the person may see, unresolved first.
pub async fn alerts_page(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(f): Query<AlertFilterForm>,
) -> Response {
    let (mut c, cookie) = chrome(&state, &caller, &headers, "/alertes");
    c.section = "alertes";
    let lang = c.t.lang;
    let w = words(lang);
    let status = f.statut.clone().unwrap_or_else(|| "unresolved".into());
    let params = AlertParams {
        organisation: f.organisation.clone(),
        status: Some(status.clone()).filter(|s| s != "all"),
        severity: f.gravite.clone().filter(|s| !s.is_empty()),
        domain: f.domaine.clone().filter(|s| !s.is_empty()),
        entity: f.entite.clone().filter(|s| !s.is_empty()),
        rule: None,
        limit: Some("500".into()),
        offset: None,
    };
    let api_lang = if lang == "en" { Lang::En } else { Lang::Fr };
    let zones = match Zones::load(&state).await {
        Ok(z) => z,
        Err(e) => return internal(e),
    };
    let (rows, total, error) = match alert_query(api_lang, &params) {
        Ok(q) => match state.scoped(&caller).alerts(q).await {
            Ok(page) => {
                (page.items.iter().map(|(a, name)| row(a, name.as_deref(), &zones, lang)).collect(), page.total, None)
            }
            Err(e) => return internal(e),
        },
        Err(p) => (Vec::new(), 0, Some(p.detail)),
    };
    let statuses = if lang == "en" {
        vec![
            ("unresolved", "unresolved"),
            ("open", "open"),
            ("acknowledged", "acknowledged"),
            ("resolved", "resolved"),
            ("all", "all"),
        ]
    } else {
        vec![
            ("unresolved", "en cours"),
            ("open", "ouvertes"),
            ("acknowledged", "prises en compte"),
            ("resolved", "closes"),
            ("all", "toutes"),
        ]
    };
    let severities =
        socle_rules::Severity::ALL.iter().rev().map(|s| (s.as_str(), severity_label(s.as_str(), lang))).collect();
    let domains = super::layers::Layer::ALL.iter().map(|l| (l.slug(), c.h.layer(l))).collect();
    let page = AlertsPage {
        w,
        rows,
        total,
        status,
        severity: f.gravite.unwrap_or_default(),
        domain: f.domaine.unwrap_or_default(),
        entity: f.entite.unwrap_or_default(),
        statuses,
        severities,
        domains,
        error,
        c,
    };
    html(StatusCode::OK, lang, &page, cookie.into_iter().collect())
}

/// One history line.
pub struct EventRow {
    pub at: String,
    pub kind: String,
    pub actor: String,
    pub note: String,
}

#[derive(Template)]
#[template(path = "alert.html")]
struct AlertPage {
    c: Chrome,
    w: &'static AlertWords,
    id: i64,
    row: AlertRow,
    entity_name: String,
    map_href: String,
    opened: String,
    rule_href: String,
    rule: String,
    assignee: String,
    resolved: bool,
    may_act: bool,
    people: Vec<(String, String)>,
    events: Vec<EventRow>,
}

fn event_label(kind: &str, lang: &str) -> String {
    let fr = match kind {
        "opened" => "ouverture",
        "flapping" => "instable",
        "acknowledged" => "prise en compte",
        "assigned" => "affectation",
        "commented" => "commentaire",
        "resolved" => "clôture",
        other => other,
    };
    if lang == "en" {
        kind.to_owned()
    } else {
        fr.to_owned()
    }
}

/// `/alertes/{id}`: what, where, since when, the last value, the history, and the forms.
pub async fn alert_page(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/alertes/{}", urlencode(&id));
    let (mut c, cookie) = chrome(&state, &caller, &headers, &path);
    c.section = "alertes";
    let lang = c.t.lang;
    let not_found =
        || message(&state, &caller, &headers, StatusCode::NOT_FOUND, |t| t.not_found_title, |t| t.not_found);
    let Ok(id) = id.parse::<i64>() else { return not_found() };
    let scoped = state.scoped(&caller);
    let Some(AlertView { alert, entity, events, may_act }) = (match scoped.alert(id).await {
        Ok(v) => v,
        Err(e) => return internal(e),
    }) else {
        return not_found();
    };
    let people = match scoped.assignable(&alert.organisation).await {
        Ok(p) => p.into_iter().map(|(id, name)| (id.to_string(), name)).collect::<Vec<_>>(),
        Err(e) => return internal(e),
    };
    let zones = match Zones::load(&state).await {
        Ok(z) => z,
        Err(e) => return internal(e),
    };
    let tz = zones.of(&alert.organisation);
    let name_of = |user: &Option<String>| match user {
        None => words(lang).engine.to_owned(),
        Some(u) => people.iter().find(|(id, _)| id == u).map_or_else(|| u.clone(), |(_, n)| n.clone()),
    };
    let events = events
        .iter()
        .map(|e| EventRow {
            at: when(e.at, tz, lang),
            kind: event_label(e.kind.as_str(), lang),
            actor: name_of(&e.actor),
            note: if lang == "en" { e.note_en.clone().or(e.note.clone()) } else { e.note.clone() }.unwrap_or_default(),
        })
        .collect();
    let page = AlertPage {
        w: words(lang),
        id,
        row: row(&alert, None, &zones, lang),
        entity_name: entity
            .as_ref()
            .and_then(|e| e.name().map(str::to_owned))
            .unwrap_or_else(|| alert.entity.to_string()),
        map_href: format!("/carte?entite={}", urlencode(alert.entity.as_str())),
        opened: when(alert.opened_at, tz, lang),
        rule_href: format!("/regles/{}", urlencode(&alert.rule)),
        rule: alert.rule.clone(),
        assignee: alert.assignee.as_ref().map_or_else(|| words(lang).nobody.to_owned(), |a| name_of(&Some(a.clone()))),
        resolved: alert.status == socle_storage::AlertStatus::Resolved,
        may_act,
        people,
        events,
        c,
    };
    html(StatusCode::OK, lang, &page, cookie.into_iter().collect())
}

#[derive(Debug, Deserialize)]
pub struct ActForm {
    #[allow(dead_code)] // checked by the policy middleware
    csrf: Option<String>,
    texte: Option<String>,
    responsable: Option<String>,
}

/// `POST /alertes/{id}/{action}`: `prise-en-compte`, `cloture`, `affectation`, `commentaire`.
pub async fn alert_act(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActForm>,
) -> Response {
    let not_found =
        || message(&state, &caller, &headers, StatusCode::NOT_FOUND, |t| t.not_found_title, |t| t.not_found);
    let Ok(id) = id.parse::<i64>() else { return not_found() };
    let text = form.texte.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    let action = match action.as_str() {
        "prise-en-compte" => AlertAction::Acknowledge,
        "cloture" => AlertAction::Resolve { note: text },
        "affectation" => AlertAction::Assign { assignee: form.responsable.filter(|r| !r.is_empty()) },
        "commentaire" => AlertAction::Comment { text: text.unwrap_or_default() },
        _ => return not_found(),
    };
    match state.scoped(&caller).act_on_alert(id, action).await {
        Ok(_) => see_other(&format!("/alertes/{id}#historique"), Vec::new()),
        Err(AlertError::NotFound) => not_found(),
        Err(AlertError::Forbidden) => {
            message(&state, &caller, &headers, StatusCode::FORBIDDEN, |t| t.forbidden_title, |t| t.forbidden_title)
        }
        Err(AlertError::Store(e)) => internal(e),
        Err(_) => see_other(&format!("/alertes/{id}?refus=1#actions"), Vec::new()),
    }
}

/// One rule in the list.
pub struct RuleRow {
    pub href: String,
    pub id: String,
    pub label: String,
    pub kind: String,
    pub organisation: String,
    pub severity: String,
    pub enabled: bool,
}

#[derive(Template)]
#[template(path = "rules.html")]
struct RulesPage {
    c: Chrome,
    w: &'static AlertWords,
    rows: Vec<RuleRow>,
    may_create: bool,
}

/// `/regles`: the rules of the person's organisations.
pub async fn rules_page(State(state): State<AppState>, caller: Caller, headers: HeaderMap) -> Response {
    let (mut c, cookie) = chrome(&state, &caller, &headers, "/regles");
    c.section = "alertes";
    let lang = c.t.lang;
    let scoped = state.scoped(&caller);
    let rules = match scoped.rules(None).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let rows = rules
        .iter()
        .map(|r| {
            let d = &r.definition;
            let label = d["label"][if lang == "en" { "en" } else { "fr" }].as_str().filter(|s| !s.is_empty());
            RuleRow {
                href: format!("/regles/{}", urlencode(&r.id)),
                id: r.id.clone(),
                label: label.or(d["label"]["fr"].as_str()).unwrap_or_default().to_owned(),
                kind: d["condition"]["type"].as_str().unwrap_or_default().to_owned(),
                organisation: r.organisation.to_string(),
                severity: severity_label(d["severity"].as_str().unwrap_or("medium"), lang),
                enabled: r.enabled,
            }
        })
        .collect();
    let may_create = !scoped.rule_editable_organisations().is_empty();
    html(StatusCode::OK, lang, &RulesPage { w: words(lang), rows, may_create, c }, cookie.into_iter().collect())
}

#[derive(Template)]
#[template(path = "rule.html")]
struct RulePage {
    c: Chrome,
    w: &'static AlertWords,
    id: String,
    action: String,
    definition: String,
    may_edit: bool,
    preview: Option<PreviewView>,
    error: Option<String>,
    saved: bool,
    /// Links to start a new rule of each kind: (href, name).
    kinds: Vec<(String, &'static str)>,
    /// The form's values and words.
    f: RuleFields,
    fw: &'static FormWords,
    /// Organisations the rule may belong to: (id, name).
    orgs: Vec<(String, String)>,
    /// Condition kinds for the form's choice: (key, name).
    kind_options: Vec<(&'static str, &'static str)>,
    severities: Vec<(&'static str, String)>,
    /// Weekdays: (key, form field suffix, name).
    week: Vec<(&'static str, &'static str, &'static str)>,
}

impl RulePage {
    /// The page around a form, with the choices the person has.
    fn new(c: Chrome, id: String, action: String, f: RuleFields, orgs: Vec<(String, String)>, may_edit: bool) -> Self {
        let lang = c.t.lang;
        let en = lang == "en";
        let definition =
            f.to_definition(lang).ok().and_then(|d| serde_json::to_string_pretty(&d).ok()).unwrap_or_default();
        Self {
            w: words(lang),
            id,
            action,
            definition,
            may_edit,
            preview: None,
            error: None,
            saved: false,
            kinds: kind_links(lang),
            f,
            fw: rule_form::words(lang),
            orgs,
            kind_options: KINDS.iter().map(|k| (k.0, if en { k.2 } else { k.1 })).collect(),
            severities: socle_rules::Severity::ALL
                .iter()
                .map(|s| (s.as_str(), severity_label(s.as_str(), lang)))
                .collect(),
            week: rule_form::WEEK
                .iter()
                .map(|(k, field, fr, en_name)| (*k, *field, if en { *en_name } else { *fr }))
                .collect(),
            c,
        }
    }
}

/// The form of a stored or starting definition; the examples if it does not
/// read as a rule (a new rule for someone who may not create one).
fn fields_of(definition: &serde_json::Value, enabled: bool, lang: &str) -> RuleFields {
    let mut d = definition.clone();
    if let Some(o) = d.as_object_mut() {
        o.remove("enabled");
        o.entry("id").or_insert_with(|| "nouvelle".into());
    }
    match serde_json::from_value::<socle_rules::RuleSpec>(d) {
        Ok(spec) => RuleFields::from_spec(&spec, enabled, lang),
        Err(_) => {
            let mut f = RuleFields::examples(lang);
            if let Some(k) = definition.pointer("/condition/type").and_then(serde_json::Value::as_str) {
                f.genre = k.to_owned();
            }
            f
        }
    }
}

/// Organisations whose rules the person may write, with their names, and `keep`
/// (a stored rule's own organisation) even if absent from them.
async fn editable_orgs(
    state: &AppState,
    scoped: &crate::policy::Scoped,
    keep: Option<&str>,
) -> Result<Vec<(String, String)>, socle_storage::StoreError> {
    let names: std::collections::HashMap<String, String> =
        state.organisations().await?.into_iter().map(|o| (o.id.to_string(), o.name)).collect();
    let mut ids: Vec<String> = scoped.rule_editable_organisations().iter().map(ToString::to_string).collect();
    if let Some(k) = keep.filter(|k| !ids.iter().any(|i| i == k)) {
        ids.insert(0, k.to_owned());
    }
    Ok(ids
        .into_iter()
        .map(|id| (names.get(&id).cloned().unwrap_or_else(|| id.clone()), id))
        .map(|(n, i)| (i, n))
        .collect())
}

pub struct PreviewView {
    pub opened: usize,
    pub resolved: usize,
    pub still_open: usize,
    pub entities: usize,
    pub observations: usize,
    pub alerts: Vec<(String, String, String)>,
}

#[derive(Debug, Deserialize)]
pub struct RuleQuery {
    enregistree: Option<String>,
    /// A rule kind to start a new rule from (`threshold`, `silence`…).
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// The rule kinds the editor starts from: (key, French name, English name, condition, target type).
pub const KINDS: [(&str, &str, &str, &str, &str); 7] = [
    (
        "threshold",
        "Seuil (avec hystérésis et durée minimale)",
        "Threshold (hysteresis, minimum duration)",
        r#"{"type": "threshold", "attribute": "temperature", "direction": "above", "level": 26.0, "clear": 25.0, "minDurationSeconds": 1800}"#,
        "Building",
    ),
    ("silence", "Capteur muet", "Silent device", r#"{"type": "silence", "afterSeconds": 21600}"#, "WasteContainer"),
    (
        "batteryLow",
        "Pile faible",
        "Battery low",
        r#"{"type": "batteryLow", "percent": 15.0, "clearPercent": 25.0}"#,
        "WasteContainer",
    ),
    (
        "rate",
        "Vitesse de variation (montée des eaux)",
        "Rate of change (river rise)",
        r#"{"type": "rate", "attribute": "currentLevel", "direction": "rising", "perHour": 0.1, "windowSeconds": 3600}"#,
        "FloodMonitoring",
    ),
    (
        "leak",
        "Fuite (débit de nuit)",
        "Leak (night flow)",
        r#"{"type": "leak", "attribute": "flow", "level": 2.0, "nights": 2, "night": "01:00-05:00"}"#,
        "WaterConsumptionObserved",
    ),
    (
        "fill",
        "Remplissage (conteneur à collecter)",
        "Filling level (container to collect)",
        r#"{"type": "fill", "percent": 80.0, "clearPercent": 60.0}"#,
        "WasteContainer",
    ),
    (
        "occupancy",
        "Consommation hors occupation",
        "Consumption outside occupancy",
        r#"{"type": "occupancy", "attribute": "activePower", "level": 0.05, "minDurationSeconds": 3600, "calendar": {"week": {"monday": ["08:00-19:00"], "tuesday": ["08:00-19:00"], "wednesday": ["08:00-19:00"], "thursday": ["08:00-19:00"], "friday": ["08:00-19:00"]}}}"#,
        "Building",
    ),
];

/// A new rule of `kind` (fill by default) for `org`, as the editor shows it.
pub fn rule_template(org: Option<&str>, kind: Option<&str>) -> String {
    let (_, fr, en, condition, target) = KINDS.iter().find(|k| Some(k.0) == kind).unwrap_or(&KINDS[5]);
    let v = serde_json::json!({
        "organisation": org.unwrap_or(""),
        "label": {"fr": fr, "en": en},
        "target": {"type": target},
        "severity": "medium",
        "condition": serde_json::from_str::<serde_json::Value>(condition).unwrap_or_default(),
        "resolveDelaySeconds": 0,
        "enabled": true,
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// `/regles/{id}` (`/regles/nouvelle` for a new one): the definition, editable by administrators.
pub async fn rule_page(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<RuleQuery>,
) -> Response {
    let path = format!("/regles/{}", urlencode(&id));
    let (mut c, cookie) = chrome(&state, &caller, &headers, &path);
    c.section = "alertes";
    let lang = c.t.lang;
    let scoped = state.scoped(&caller);
    let (f, may_edit, keep) = if id == "nouvelle" {
        let orgs = scoped.rule_editable_organisations();
        let template = rule_template(orgs.first().map(|o| o.as_str()), q.kind.as_deref());
        let definition = serde_json::from_str(&template).unwrap_or_default();
        (fields_of(&definition, true, lang), !orgs.is_empty(), None)
    } else {
        match scoped.rule(&id).await {
            Ok(Some(r)) => (
                fields_of(&r.definition, r.enabled, lang),
                scoped.may_edit_rules_of(&r.organisation),
                Some(r.organisation.to_string()),
            ),
            Ok(None) => {
                return message(
                    &state,
                    &caller,
                    &headers,
                    StatusCode::NOT_FOUND,
                    |t| t.not_found_title,
                    |t| t.not_found,
                )
            }
            Err(e) => return internal(e),
        }
    };
    let orgs = match editable_orgs(&state, &scoped, keep.as_deref()).await {
        Ok(o) => o,
        Err(e) => return internal(e),
    };
    let mut page = RulePage::new(c, id, path, f, orgs, may_edit);
    page.saved = q.enregistree.is_some();
    html(StatusCode::OK, lang, &page, cookie.into_iter().collect())
}

fn kind_links(lang: &str) -> Vec<(String, &'static str)> {
    KINDS.iter().map(|k| (format!("/regles/nouvelle?type={}", k.0), if lang == "en" { k.2 } else { k.1 })).collect()
}

#[derive(Debug, Deserialize)]
pub struct RuleForm {
    #[allow(dead_code)] // checked by the policy middleware
    csrf: Option<String>,
    /// The JSON of the advanced editor; absent when the form's fields are sent.
    definition: Option<String>,
    /// `apercu` or `enregistrer`.
    action: String,
    #[serde(flatten)]
    fields: RuleFields,
}

/// `POST /regles/{id}`: preview the edited definition, or save it.
pub async fn rule_submit(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<RuleForm>,
) -> Response {
    let path = format!("/regles/{}", urlencode(&id));
    let (mut c, cookie) = chrome(&state, &caller, &headers, &path);
    c.section = "alertes";
    let lang = c.t.lang;
    let api_lang = if lang == "en" { Lang::En } else { Lang::Fr };
    let scoped = state.scoped(&caller);
    let fixed_id = (id != "nouvelle").then_some(id.as_str());
    // The form is shown editable only to those who may save it (saving is checked again).
    let (may_edit, keep) = match fixed_id {
        None => (!scoped.rule_editable_organisations().is_empty(), None),
        Some(id) => match scoped.rule(id).await {
            Ok(Some(r)) => (scoped.may_edit_rules_of(&r.organisation), Some(r.organisation.to_string())),
            Ok(None) => {
                return message(
                    &state,
                    &caller,
                    &headers,
                    StatusCode::NOT_FOUND,
                    |t| t.not_found_title,
                    |t| t.not_found,
                )
            }
            Err(e) => return internal(e),
        },
    };
    // The advanced editor's JSON, or the form's fields read into the same JSON.
    let (definition, parsed) = match &form.definition {
        Some(json) => {
            let parsed = serde_json::from_str::<serde_json::Value>(json)
                .map_err(|e| e.to_string())
                .and_then(|v| parse_rule(api_lang, v, fixed_id).map_err(|p| p.detail));
            (json.clone(), parsed)
        }
        None => match form.fields.to_definition(lang) {
            Ok(v) => {
                let shown = serde_json::to_string_pretty(&v).unwrap_or_default();
                (shown, parse_rule(api_lang, v, fixed_id).map_err(|p| p.detail))
            }
            Err(e) if lang == "en" => (String::new(), Err(format!("{}: {}", e.field, e.message))),
            Err(e) => (String::new(), Err(format!("« {} » : {}", e.field, e.message))),
        },
    };
    // The form shows what was sent: the fields, or the JSON as far as it reads.
    let fields = match &form.definition {
        None => form.fields.clone(),
        Some(json) => match serde_json::from_str::<serde_json::Value>(json) {
            Ok(v) => fields_of(&v, v.get("enabled").and_then(serde_json::Value::as_bool).unwrap_or(true), lang),
            Err(_) => RuleFields::examples(lang),
        },
    };
    let orgs = match editable_orgs(&state, &scoped, keep.as_deref()).await {
        Ok(o) => o,
        Err(e) => return internal(e),
    };
    let mut page = RulePage::new(c, id.clone(), path, fields, orgs, may_edit);
    if !definition.is_empty() {
        page.definition = definition;
    }
    let (rule, enabled) = match parsed {
        Ok(r) => r,
        Err(e) => {
            page.error = Some(e);
            return html(StatusCode::UNPROCESSABLE_ENTITY, lang, &page, cookie.into_iter().collect());
        }
    };
    let outcome = if form.action == "enregistrer" {
        scoped
            .save_rule(&rule, enabled, fixed_id.is_none())
            .await
            .map(|(r, _)| see_other(&format!("/regles/{}?enregistree=1", urlencode(&r.id)), Vec::new()))
    } else {
        scoped.preview_rule(&rule).await.map(|p| {
            page.preview = Some(PreviewView {
                opened: p.opened,
                resolved: p.resolved,
                still_open: p.still_open,
                entities: p.entities,
                observations: p.observations,
                alerts: p
                    .alerts
                    .iter()
                    .map(|a| {
                        (
                            when(a.opened_at, rule.timezone(), lang),
                            a.entity.to_string(),
                            if lang == "en" { a.message.en.clone() } else { a.message.fr.clone() },
                        )
                    })
                    .collect(),
            });
            html(StatusCode::OK, lang, &page, Vec::new())
        })
    };
    match outcome {
        Ok(res) => res,
        Err(AlertError::Store(e)) => internal(e),
        Err(AlertError::NotFound) => {
            message(&state, &caller, &headers, StatusCode::NOT_FOUND, |t| t.not_found_title, |t| t.not_found)
        }
        Err(e) => {
            let status = if matches!(e, AlertError::Forbidden) {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let p = crate::routes::alerts::alert_problem(api_lang, e, &id);
            let mut page = page;
            page.preview = None;
            page.error = Some(p.detail);
            html(status, lang, &page, cookie.into_iter().collect())
        }
    }
}

/// The web app manifest: the hypervisor installs as an app opening on the alerts.
pub async fn manifest(headers: HeaderMap) -> Response {
    let lang = super::page_lang(&headers);
    let en = lang == Lang::En;
    let body = serde_json::json!({
        "name": if en { "Socle — alerts and hypervisor" } else { "Socle — alertes et hyperviseur" },
        "short_name": "Socle",
        "lang": if en { "en" } else { "fr" },
        "start_url": "/alertes",
        "scope": "/",
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": "#000091",
        "icons": [{"src": "/icone.svg", "sizes": "any", "type": "image/svg+xml", "purpose": "any"}],
    });
    static_file(body.to_string().into_bytes(), "application/manifest+json")
}

/// The service worker, at the root so that its scope is the whole site.
pub async fn service_worker() -> Response {
    static_file(include_bytes!("../../static/sw.js").to_vec(), "text/javascript; charset=utf-8")
}

pub async fn icon() -> Response {
    static_file(include_bytes!("../../static/icon.svg").to_vec(), "image/svg+xml")
}

fn static_file(body: Vec<u8>, mime: &'static str) -> Response {
    use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
    use axum::http::HeaderValue;
    use axum::response::IntoResponse;
    let mut res = body.into_response();
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(mime));
    // Unhashed names: browsers must check for a new version.
    res.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_starting_rule_is_valid() {
        for (kind, ..) in KINDS {
            let mut v: serde_json::Value = serde_json::from_str(&rule_template(Some("commune-a"), Some(kind))).unwrap();
            v.as_object_mut().unwrap().remove("enabled");
            v["id"] = serde_json::json!(format!("essai-{kind}"));
            let rule: Result<socle_rules::Rule, _> = serde_json::from_value(v);
            assert!(rule.is_ok(), "{kind}: {rule:?}");
            assert_eq!(rule.unwrap().kind().as_str(), kind);
        }
    }
}
