//! The console's pages: compile-time-checked templates (askama, HTML-escaped) under
//! `crates/clinic/templates/`, and the values they show, prepared as text with units.

use askama::Template;

/// The signed-in user as the header shows them.
#[derive(Debug, Clone)]
pub struct UserView {
    /// User name.
    pub name: String,
    /// Role in words.
    pub role: String,
    /// May read the audit log.
    pub auditor: bool,
    /// May read clinical records (the clinical pages in the menu).
    pub clinical: bool,
    /// May administer accounts.
    pub admin: bool,
}

/// The patient band on every clinical page.
#[derive(Debug, Clone)]
pub struct Banner {
    /// Name.
    pub name: String,
    /// Date of birth.
    pub dob: String,
    /// Medical record number.
    pub mrn: String,
    /// The serials of the patient's pumps in place ("none implanted" when there is none).
    pub serials: String,
}

/// What every page's layout needs.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// Who is signed in.
    pub user: Option<UserView>,
    /// The session's CSRF token for the forms.
    pub csrf: String,
    /// The patient of a clinical page.
    pub banner: Option<Banner>,
}

/// A form field with its label, the rule it follows, what was typed and its error.
#[derive(Debug, Clone)]
pub struct Field {
    /// Form name.
    pub name: &'static str,
    /// Label.
    pub label: &'static str,
    /// text, password, date, textarea, select, checkbox.
    pub kind: &'static str,
    /// What is allowed.
    pub hint: String,
    /// The value typed (kept on error).
    pub value: String,
    /// The error, next to the field.
    pub error: Option<String>,
    /// Choices of a select: (value, label).
    pub options: Vec<(String, String)>,
}

impl Field {
    /// A field.
    pub fn new(name: &'static str, label: &'static str, kind: &'static str, hint: &str) -> Self {
        Field {
            name,
            label,
            kind,
            hint: hint.to_owned(),
            value: String::new(),
            error: None,
            options: Vec::new(),
        }
    }
    /// The fields' errors for the summary at the top: (name, label, error).
    pub fn summary<'a>(
        fields: impl IntoIterator<Item = &'a Field>,
    ) -> Vec<(String, String, String)> {
        fields
            .into_iter()
            .filter_map(|f| {
                f.error
                    .as_ref()
                    .map(|e| (f.name.to_owned(), f.label.to_owned(), e.clone()))
            })
            .collect()
    }
    /// With choices.
    pub fn options(mut self, o: Vec<(String, String)>) -> Self {
        self.options = o;
        self
    }
}

/// A message page (errors, refusals).
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    /// Layout.
    pub ctx: Ctx,
    /// Heading.
    pub heading: String,
    /// CSS class: alert, warn, notice.
    pub class: &'static str,
    /// Message.
    pub message: String,
    /// Where to go back.
    pub back: String,
    /// The link's text.
    pub back_label: String,
}

/// Sign-in.
#[derive(Template)]
#[template(path = "signin.html")]
pub struct SigninPage {
    /// Layout.
    pub ctx: Ctx,
    /// Why the user is here (an expired session).
    pub notice: Option<String>,
    /// A failed sign-in.
    pub error: Option<String>,
    /// The sign-in form's CSRF token (also in a cookie).
    pub form_csrf: String,
    /// User name and password.
    pub fields: Vec<Field>,
}

/// A due refill on the list.
#[derive(Debug, Clone)]
pub struct DueRow {
    /// Patient.
    pub patient_id: i64,
    /// "Name (record)".
    pub label: String,
    /// Due date.
    pub due_on: String,
    /// What limits the date.
    pub limited_by: String,
}

/// A visit whose flagged reconciliation awaits its investigation.
#[derive(Debug, Clone)]
pub struct FlaggedRow {
    /// Visit.
    pub visit_id: i64,
    /// "Name (record)".
    pub label: String,
    /// Opened at.
    pub opened: String,
    /// The reconciliation in words.
    pub text: String,
}

/// An implant nearing ERI.
#[derive(Debug, Clone)]
pub struct EriRow {
    /// Patient.
    pub patient_id: i64,
    /// "Name (record)".
    pub label: String,
    /// Projected ERI.
    pub eri: String,
    /// Replace before.
    pub replace_before: String,
    /// Days to the projected stop.
    pub days_to_stop: i64,
    /// Urgency in words.
    pub urgency: String,
}

/// Today's list.
#[derive(Template)]
#[template(path = "today.html")]
pub struct TodayPage {
    /// Layout.
    pub ctx: Ctx,
    /// Today.
    pub today: String,
    /// Overdue refills.
    pub overdue: Vec<DueRow>,
    /// Due this week.
    pub this_week: Vec<DueRow>,
    /// Flagged reconciliations awaiting investigation.
    pub flagged: Vec<FlaggedRow>,
    /// Implants nearing ERI.
    pub eri: Vec<EriRow>,
    /// Implants whose due date could not be computed.
    pub problems: Vec<String>,
    /// How many each list has in all (overdue, this week, flagged, ERI): the page shows
    /// the most urgent of each and links to the whole list.
    pub totals: [usize; 4],
    /// Whether each list has more than the page shows.
    pub more: [bool; 4],
}

/// A search hit.
#[derive(Debug, Clone)]
pub struct PatientRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Date of birth.
    pub dob: String,
    /// Record number.
    pub mrn: String,
    /// Journey state.
    pub state: String,
}

/// An implant on the patient's page.
#[derive(Debug, Clone)]
pub struct ImplantView {
    /// Id.
    pub id: i64,
    /// Serial.
    pub serial: String,
    /// The prescription in force, in words.
    pub rx_words: String,
    /// Implant and catheter.
    pub rows: Vec<(String, String)>,
    /// An open visit.
    pub open_visit: Option<i64>,
    /// The user may open a visit.
    pub may_visit: bool,
    /// The user may prescribe.
    pub may_prescribe: bool,
    /// The user may read MRI episodes (the checklist link).
    pub may_mri: bool,
    /// Daily dose and reservoir over time, with their text alternatives.
    pub plots: Vec<super::plots::PlotView>,
}

/// A trial on the patient's page.
#[derive(Debug, Clone)]
pub struct TrialView {
    /// Id.
    pub id: i64,
    /// What was given.
    pub summary: String,
    /// The evaluation.
    pub evaluation: String,
    /// The decision, once made.
    pub decision: Option<String>,
}

/// A timeline entry.
#[derive(Debug, Clone)]
pub struct TimelineEntry {
    /// Sort key (UTC, RFC 3339).
    pub sort: String,
    /// When, shown.
    pub when: String,
    /// Kind.
    pub kind: &'static str,
    /// What.
    pub text: String,
    /// Link.
    pub link: Option<String>,
}

/// A patient's page.
#[derive(Template)]
#[template(path = "patient.html")]
pub struct PatientPage {
    /// Layout.
    pub ctx: Ctx,
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Identifiers.
    pub identifiers: Vec<(String, String)>,
    /// Implants in place.
    pub implants: Vec<ImplantView>,
    /// Trials.
    pub trials: Vec<TrialView>,
    /// The user may record trials and decisions.
    pub may_trial: bool,
    /// Newest first.
    pub timeline: Vec<TimelineEntry>,
}

/// One form of a visit step.
#[derive(Debug, Clone)]
pub struct StepForm {
    /// aspirate, investigation, fill, close.
    pub action: &'static str,
    /// Legend.
    pub legend: &'static str,
    /// Button.
    pub button: &'static str,
    /// Fields.
    pub fields: Vec<Field>,
}

/// The refill-visit page.
#[derive(Template)]
#[template(path = "visit.html")]
pub struct VisitPage {
    /// Layout.
    pub ctx: Ctx,
    /// Visit id.
    pub id: i64,
    /// Patient id.
    pub patient_id: i64,
    /// Step reached, in words.
    pub step: String,
    /// The visit so far.
    pub rows: Vec<(String, String)>,
    /// Flagged and not yet investigated.
    pub flagged: bool,
    /// The reconciliation in words.
    pub reconciliation: String,
    /// The forms of the next steps.
    pub forms: Vec<StepForm>,
    /// Closed.
    pub closed: bool,
    /// An error not tied to one field.
    pub general_error: Option<String>,
    /// The field errors, listed at the top with links to their fields: (name, label, error).
    pub summary: Vec<(String, String, String)>,
}

/// The trial form.
#[derive(Template)]
#[template(path = "trial.html")]
pub struct TrialPage {
    /// Layout.
    pub ctx: Ctx,
    /// Patient id.
    pub id: i64,
    /// Fields.
    pub fields: Vec<Field>,
    /// An error not tied to one field.
    pub general_error: Option<String>,
    /// The field errors, listed at the top with links to their fields: (name, label, error).
    pub summary: Vec<(String, String, String)>,
}

/// The printable refill report.
#[derive(Template)]
#[template(path = "report.html")]
pub struct ReportPage {
    /// Layout.
    pub ctx: Ctx,
    /// Visit id.
    pub id: i64,
    /// Rows.
    pub rows: Vec<(String, String)>,
}

/// An audit entry shown.
#[derive(Debug, Clone)]
pub struct AuditLine {
    /// Id.
    pub id: i64,
    /// When.
    pub at: String,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// Which record.
    pub entity: String,
}

/// The audit view.
#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    /// Layout.
    pub ctx: Ctx,
    /// Newest first.
    pub rows: Vec<AuditLine>,
}

/// A session in the pump's list.
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// Id.
    pub id: i64,
    /// When opened.
    pub opened: String,
    /// By whom.
    pub by: String,
    /// Status.
    pub status: String,
    /// Outcome in words.
    pub outcome: String,
}

/// The pump's programming page.
#[derive(Template)]
#[template(path = "programming.html")]
pub struct ProgrammingPage {
    /// Layout.
    pub ctx: Ctx,
    /// Implant id.
    pub implant_id: i64,
    /// Serial.
    pub serial: String,
    /// The station is enrolled with the pump.
    pub enrolled: bool,
    /// The pump's address.
    pub address: String,
    /// The station's key id.
    pub key_id: String,
    /// What the pump last confirmed, as rows.
    pub runs: Option<Vec<(String, String)>>,
    /// Sessions, newest first.
    pub sessions: Vec<SessionRow>,
    /// An error to show.
    pub error: Option<String>,
    /// An open window's invite (JSON).
    pub invite: Option<String>,
    /// When it closes.
    pub invite_expires: String,
    /// The last remote action in words.
    pub remote_message: Option<String>,
}

/// A programming session's page.
#[derive(Template)]
#[template(path = "session.html")]
pub struct SessionPage {
    /// Layout.
    pub ctx: Ctx,
    /// Session id.
    pub id: i64,
    /// Implant id.
    pub implant_id: i64,
    /// Serial.
    pub serial: String,
    /// Status.
    pub status: String,
    /// Outcome.
    pub outcome: Option<String>,
    /// An error to show.
    pub error: Option<String>,
    /// The log verified.
    pub log_ok: bool,
    /// The log's check in words.
    pub log_message: String,
    /// Earlier sessions reconciled.
    pub reconciled: Vec<String>,
    /// Disagreements.
    pub disagreements: Vec<String>,
    /// What the pump held.
    pub before: Vec<(String, String)>,
    /// The change may be chosen.
    pub choose: bool,
    /// Prescription versions to choose: (id, words).
    pub prescriptions: Vec<(i64, String)>,
    /// Visits with a fill: (id, words).
    pub visits: Vec<(i64, String)>,
    /// Old against new.
    pub review: Vec<String>,
    /// The reviewed change may be sent by this user.
    pub sendable: bool,
    /// What the pump confirmed.
    pub confirmed: Option<Vec<(String, String)>>,
    /// The look ahead of the chosen change.
    pub lookahead: Option<LookaheadPage>,
}

/// The look ahead as the session page shows it.
#[derive(Debug, Clone)]
pub struct LookaheadPage {
    /// The drugs, one column each.
    pub drugs: Vec<String>,
    /// Rows: day, its date, one cell per drug (tip of prescribed, percent), whether any
    /// cell is outside the band, and the reservoir at the day's end.
    pub rows: Vec<LookaheadRow>,
    /// The next refill by the implant's own rule, in words.
    pub next_refill: String,
    /// Warnings (excursions, no forecast).
    pub warnings: Vec<String>,
    /// Alarms the change would raise.
    pub alarms: Vec<String>,
    /// Sending needs an acknowledgement.
    pub needs_ack: bool,
    /// Who acknowledged, when, in words.
    pub acknowledged: Option<String>,
    /// The twin's hardware and how long it took, in words.
    pub about: String,
}

/// One day of the look ahead on the page.
#[derive(Debug, Clone)]
pub struct LookaheadRow {
    /// Day number from the change.
    pub day: u32,
    /// Its date.
    pub date: String,
    /// Per drug: tip of prescribed in words, and whether it is outside 80-120 %.
    pub cells: Vec<(String, bool)>,
    /// Reservoir at the day's end.
    pub reservoir: String,
}
