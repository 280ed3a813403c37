//! The browser harness of the console's page tests: a fresh SQLite clinic with the demo
//! patients served on 127.0.0.1, headless Chromium over chromedriver, axe-core, and
//! screenshots at 1024 × 768 and 1440 × 900 in `target/console-screenshots/`.
//!
//! Without Chromium and chromedriver the browser tests print `SKIPPED` (set
//! `THECAL_REQUIRE_BROWSER=1` to make that a failure); without axe-core the accessibility
//! check prints `SKIPPED` (`THECAL_REQUIRE_AXE=1`). `THECAL_CHROMIUM`,
//! `THECAL_CHROMEDRIVER` and `THECAL_AXE` name other files.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{TimeDelta, Utc};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use thecal_clinic::api::{AppState, Config};
use thecal_clinic::storage::{self, Storage};
use tower::ServiceExt;

pub const PASSWORD: &str = thecal_clinic::demo::DEMO_PASSWORD;
pub const SCRIPT_NAME: &str =
    "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\"> Mallory";

/// A clinic: a fresh SQLite database with the demo patients and a patient whose name
/// carries markup, and a clock the test can move forward.
pub struct Clinic {
    pub state: AppState,
    pub offset_ms: Arc<AtomicI64>,
    pub dir: PathBuf,
    pub script_patient: i64,
}

impl Drop for Clinic {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn random_hex() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("random");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub async fn api_call(
    app: &axum::Router,
    session: Option<&(String, String)>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value, Option<String>) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some((token, csrf)) = session {
        req = req
            .header(header::COOKIE, format!("thecal_session={token}"))
            .header("x-csrf-token", csrf);
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let cookie = resp
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        cookie,
    )
}

pub async fn api_login(app: &axum::Router, user: &str) -> (String, String) {
    let (s, v, cookie) = api_call(
        app,
        None,
        "POST",
        "/api/v1/session",
        Some(json!({"username": user, "password": PASSWORD})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let cookie = cookie.unwrap();
    let token = cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap();
    (token, v["csrf_token"].as_str().unwrap().to_owned())
}

impl Clinic {
    pub async fn new() -> Clinic {
        let dir = std::env::temp_dir().join(format!("thecal-console-test-{}", random_hex()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("clinic.db").display());
        let store: Arc<dyn Storage> = storage::open(&url).await.unwrap();
        thecal_clinic::demo::seed(store.clone(), Utc::now())
            .await
            .unwrap();
        let offset_ms = Arc::new(AtomicI64::new(0));
        let o = offset_ms.clone();
        let state = AppState {
            store,
            config: Config::default(),
            now: Arc::new(move || Utc::now() + TimeDelta::milliseconds(o.load(Ordering::SeqCst))),
        };
        let api = thecal_clinic::api::router(state.clone());
        let dr = api_login(&api, "dr.demo").await;
        let (s, v, _) = api_call(
            &api,
            Some(&dr),
            "POST",
            "/api/v1/patients",
            Some(
                json!({"mrn": "XSS-1", "name": SCRIPT_NAME, "date_of_birth": "1990-01-01",
                        "condition": {"kind": "pain", "type": "cancer"}}),
            ),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        Clinic {
            state,
            offset_ms,
            dir,
            script_patient: v["id"].as_i64().unwrap(),
        }
    }

    pub fn app(&self) -> axum::Router {
        thecal_clinic::app(self.state.clone())
    }

    /// Serves the API and the console on 127.0.0.1; returns the base URL.
    pub async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = self.app();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        format!("http://{addr}")
    }

    /// Serves the API and the console with a programmer station; returns the base URL.
    pub async fn serve_with(
        &self,
        station: std::sync::Arc<thecal_clinic::programming::Station>,
    ) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = thecal_clinic::app_with_station(self.state.clone(), station);
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        format!("http://{addr}")
    }

    pub fn advance(&self, d: TimeDelta) {
        self.offset_ms
            .fetch_add(d.num_milliseconds(), Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------- the browser

pub fn find_binary(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| p.is_file())
}

pub struct Browser {
    pub client: Option<Client>,
    pub driver: Child,
    pub shots: PathBuf,
    pub test: &'static str,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.join("console-screenshots")
}

/// Starts chromedriver and a headless Chromium, or `None` after a SKIPPED notice.
pub async fn browser(test: &'static str) -> Option<Browser> {
    let chromium = find_binary("THECAL_CHROMIUM", &["chromium", "chromium-browser"]);
    let driver = find_binary("THECAL_CHROMEDRIVER", &["chromedriver"]);
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        let msg = format!(
            "SKIPPED: {test}: Chromium or chromedriver not found (Debian packages chromium, \
             chromium-driver); set THECAL_REQUIRE_BROWSER=1 to make this a failure"
        );
        if std::env::var("THECAL_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("{msg}");
        }
        eprintln!("{msg}");
        println!("{msg}");
        return None;
    };
    let port = StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", driver.display()));
    let mut b = Browser {
        client: None,
        driver: child,
        shots: screenshot_dir(),
        test,
    };
    std::fs::create_dir_all(&b.shots).unwrap();
    let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium.display().to_string(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1024,768", "--hide-scrollbars", "--force-device-scale-factor=1",
                     "--no-first-run", "--disable-extensions", "--lang=en-GB"]
        }
    }))
    .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let mut last = String::new();
    for _ in 0..100 {
        let mut cb = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        cb.capabilities(caps.clone());
        match cb.connect(&url).await {
            Ok(c) => {
                b.client = Some(c);
                return Some(b);
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no WebDriver session at {url}: {last}");
}

impl Browser {
    pub fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    pub async fn go(&self, url: &str) {
        self.c().goto(url).await.unwrap();
    }

    pub async fn main_text(&self) -> String {
        self.c()
            .find(Locator::Css("main"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn text_of(&self, css: &str) -> String {
        self.c()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    pub async fn path(&self) -> String {
        self.c().current_url().await.unwrap().path().to_owned()
    }

    pub async fn type_in(&self, id: &str, text: &str) {
        let e = self
            .c()
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("#{id}: {e}"));
        if matches!(
            e.attr("type").await.unwrap().as_deref(),
            Some("date" | "datetime-local")
        ) {
            // Typing into a date control follows the browser's locale; set the ISO value.
            self.c()
                .execute(
                    "document.getElementById(arguments[0]).value = arguments[1];",
                    vec![Value::from(id), Value::from(text)],
                )
                .await
                .unwrap();
            return;
        }
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    pub async fn choose(&self, id: &str, value: &str) {
        self.c()
            .find(Locator::Id(id))
            .await
            .unwrap()
            .select_by_value(value)
            .await
            .unwrap();
    }

    /// Clicks what leads to another page and waits until that page has loaded.
    pub async fn click(&self, css: &str) {
        let old = self.c().find(Locator::Css("html")).await.unwrap();
        self.tick(css).await;
        for _ in 0..200 {
            if old.tag_name().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for _ in 0..200 {
            let state = self
                .c()
                .execute("return document.readyState;", vec![])
                .await
                .unwrap();
            if state == "complete" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{css}: the next page did not load");
    }

    /// Clicks a control on the page (no navigation).
    pub async fn tick(&self, css: &str) {
        match self.c().find(Locator::Css(css)).await {
            Ok(e) => e.click().await.unwrap(),
            Err(e) => panic!("{css}: {e}; the page:\n{}", self.main_text().await),
        }
    }

    pub async fn value_of(&self, id: &str) -> String {
        self.c()
            .find(Locator::Id(id))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// The error shown next to a field, tied to it by aria-describedby.
    pub async fn field_error(&self, name: &str) -> String {
        let input = self
            .c()
            .find(Locator::Id(&format!("f-{name}")))
            .await
            .unwrap();
        let described = input
            .attr("aria-describedby")
            .await
            .unwrap()
            .unwrap_or_default();
        assert!(
            described.split(' ').any(|d| d == format!("e-{name}")),
            "the field {name} is not described by its error: {described}"
        );
        assert_eq!(
            input.attr("aria-invalid").await.unwrap().as_deref(),
            Some("true")
        );
        self.text_of(&format!("#e-{name}")).await
    }

    pub async fn sign_in(&self, base: &str, user: &str) {
        self.go(&format!("{base}/signin")).await;
        self.type_in("f-username", user).await;
        self.type_in("f-password", PASSWORD).await;
        self.click("form[action='/signin'] button").await;
        assert_eq!(self.path().await, "/today", "{}", self.main_text().await);
    }

    pub async fn sign_out(&self) {
        self.click("form[action='/signout'] button").await;
        assert_eq!(self.path().await, "/signin");
    }

    /// The patient band: name, date of birth, pump serial.
    pub async fn band(&self) -> (String, String, String) {
        (
            self.text_of("[data-testid=band-name]").await,
            self.text_of("[data-testid=band-dob]").await,
            self.text_of("[data-testid=band-serial]").await,
        )
    }

    /// Runs axe-core (WCAG 2.1 A and AA rules) on the page: no serious or critical
    /// violation. axe-core comes from npm at build time (`target/axe/node_modules`, or
    /// `THECAL_AXE`); without it a SKIPPED notice, a failure under `THECAL_REQUIRE_AXE=1`.
    pub async fn axe(&self, page: &str) {
        let Some(source) = axe_source() else {
            return;
        };
        self.c()
            .execute(&format!("{source}\nreturn true;"), vec![])
            .await
            .unwrap();
        let found = self
            .c()
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {runOnly: {type: 'tag',
                     values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
                   .then(r => done(r.violations
                     .filter(v => v.impact === 'serious' || v.impact === 'critical')
                     .map(v => v.impact + ' ' + v.id + ': ' + v.help + ' at ' +
                          v.nodes.map(n => n.target.join(' ')).join(', '))))
                   .catch(e => done(['axe failed: ' + e]));",
                vec![],
            )
            .await
            .unwrap();
        let found: Vec<String> = serde_json::from_value(found).unwrap();
        assert!(
            found.is_empty(),
            "{page}: axe-core found serious or critical violations:\n{}",
            found.join("\n")
        );
    }

    /// Saves the page at tablet and desktop sizes, then returns to the tablet size; checks
    /// it with axe-core.
    pub async fn shot(&self, page: &str) {
        self.axe(page).await;
        for (w, h) in [(1440u32, 900u32), (1024, 768)] {
            self.c().set_window_size(w, h).await.unwrap();
            let png = self.c().screenshot().await.unwrap();
            assert!(png.starts_with(b"\x89PNG"), "not a PNG");
            let f = self.shots.join(format!("{}-{page}-{w}x{h}.png", self.test));
            std::fs::write(&f, png).unwrap();
        }
    }

    /// Prints the page to PDF (A4) through WebDriver's print command; saves it beside the
    /// screenshots and returns its bytes.
    pub async fn print_pdf(&self, page: &str) -> Vec<u8> {
        use base64::Engine as _;
        let v = self.c().issue_cmd(PrintPage).await.unwrap();
        let pdf = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::write(self.shots.join(format!("{}-{page}.pdf", self.test)), &pdf).unwrap();
        pdf
    }

    pub async fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close().await;
        }
    }
}

pub fn axe_source() -> Option<&'static str> {
    static AXE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    AXE.get_or_init(|| {
        let path = std::env::var_os("THECAL_AXE").map_or_else(
            || screenshot_dir().join("../axe/node_modules/axe-core/axe.min.js"),
            PathBuf::from,
        );
        match std::fs::read_to_string(&path) {
            Ok(s) => Some(s),
            Err(e) => {
                let msg = format!(
                    "SKIPPED: the axe-core accessibility check: {} ({e}); install it with \
                     `npm install --prefix target/axe axe-core@4`; set THECAL_REQUIRE_AXE=1 \
                     to make this a failure",
                    path.display()
                );
                if std::env::var("THECAL_REQUIRE_AXE").as_deref() == Ok("1") {
                    panic!("{msg}");
                }
                eprintln!("{msg}");
                println!("{msg}");
                None
            }
        }
    })
    .as_deref()
}

/// WebDriver's "Print Page" command.
#[derive(Debug)]
pub struct PrintPage;

impl fantoccini::wd::WebDriverCompatibleCommand for PrintPage {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/print", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(json!({"page": {"width": 21.0, "height": 29.7}, "background": false}).to_string()),
        )
    }
}

// ---------------------------------------------------------------- plumbing

pub async fn get(
    app: &axum::Router,
    path: &str,
    cookie: Option<&str>,
) -> (StatusCode, String, axum::http::HeaderMap) {
    let mut req = Request::builder().uri(path);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    (
        status,
        String::from_utf8_lossy(&bytes).into_owned(),
        headers,
    )
}

pub fn run(f: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f);
}

// ---------------------------------------------------------------- the keyboard

/// A focused element described for focus-order checks: `#id`, `a[href=…]`, or
/// `tag "text"`.
const DESCRIBE_FOCUS: &str = "const e = document.activeElement;
  if (!e || e === document.body) return 'body';
  if (e.id) return '#' + e.id;
  if (e.tagName === 'A') return 'a[href=' + e.getAttribute('href') + ']';
  return e.tagName.toLowerCase() + ' \"' + (e.textContent || '').trim() + '\"';";

impl Browser {
    /// Signs in with the form and expects to land on `home`.
    pub async fn sign_in_to(&self, base: &str, user: &str, home: &str) {
        self.go(&format!("{base}/signin")).await;
        self.type_in("f-username", user).await;
        self.type_in("f-password", PASSWORD).await;
        self.click("form[action='/signin'] button").await;
        assert_eq!(self.path().await, home, "{}", self.main_text().await);
    }

    /// Presses keys on whatever has the focus (WebDriver key actions: what a keyboard
    /// does, no element targeted). Each `&str` is typed character by character; the
    /// special keys are `fantoccini::key::Key`s.
    pub async fn press(&self, keys: &str) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let mut a = KeyActions::new("keyboard".to_owned());
        for c in keys.chars() {
            a = a
                .then(KeyAction::Down { value: c })
                .then(KeyAction::Up { value: c });
        }
        self.c().perform_actions(a).await.unwrap();
    }

    /// The focused element, described.
    pub async fn focused(&self) -> String {
        self.c()
            .execute(DESCRIBE_FOCUS, vec![])
            .await
            .unwrap()
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Whether the focused element shows a focus indicator: an outline at least 2 px wide
    /// or a box shadow, in its computed style.
    pub async fn focus_visible(&self) -> bool {
        self.c()
            .execute(
                "const e = document.activeElement;
                 if (!e || e === document.body) return false;
                 const s = getComputedStyle(e);
                 return (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2)
                     || (s.boxShadow && s.boxShadow !== 'none');",
                vec![],
            )
            .await
            .unwrap()
            == Value::Bool(true)
    }

    /// Presses Tab until the focused element is `want` (described as by [`Self::focused`]),
    /// at most `max` times; every element passed must show its focus. Returns the elements
    /// focused on the way, in order (one entry per element).
    pub async fn tab_to(&self, want: &str, max: usize) -> Vec<String> {
        let tab = fantoccini::key::Key::Tab.to_string();
        let mut seen: Vec<String> = Vec::new();
        for _ in 0..max {
            self.press(&tab).await;
            let f = self.focused().await;
            assert!(
                self.focus_visible().await,
                "{f} has the focus but no visible focus indicator"
            );
            if seen.last() != Some(&f) {
                seen.push(f.clone());
            }
            if f == want {
                return seen;
            }
        }
        panic!("{want} not reached with {max} presses of Tab; focused in turn: {seen:?}");
    }

    /// Presses a key that leads to another page and waits until that page has loaded.
    pub async fn press_to_load(&self, keys: &str) {
        let old = self.c().find(Locator::Css("html")).await.unwrap();
        self.press(keys).await;
        for _ in 0..200 {
            if old.tag_name().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for _ in 0..200 {
            let state = self
                .c()
                .execute("return document.readyState;", vec![])
                .await
                .unwrap();
            if state == "complete" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{keys:?}: the next page did not load");
    }

    /// Scrolls an element to the top of the window, then takes the screenshots (and runs
    /// axe-core) as [`Self::shot`] does.
    pub async fn shot_at(&self, page: &str, css: &str) {
        for (w, h) in [(1440u32, 900u32), (1024, 768)] {
            self.c().set_window_size(w, h).await.unwrap();
            self.c()
                .execute(
                    "document.querySelector(arguments[0]).scrollIntoView({block: 'start'});",
                    vec![Value::from(css)],
                )
                .await
                .unwrap();
            let png = self.c().screenshot().await.unwrap();
            assert!(png.starts_with(b"\x89PNG"), "not a PNG");
            let f = self.shots.join(format!("{}-{page}-{w}x{h}.png", self.test));
            std::fs::write(&f, png).unwrap();
        }
        self.axe(page).await;
    }
}
