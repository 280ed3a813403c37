//! Private files: device key files (JSON, hex keys), written with mode 0600 and refused
//! when readable by group or others, and the atomic writes everything private goes
//! through (temporary file, fsync, rename, fsync of the directory).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thecal_link::{PublicKey, StaticKeypair, key_id_for};

/// 32 random bytes from the operating system.
pub fn random32() -> Result<[u8; 32], String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| format!("the system random source failed: {e}"))?;
    Ok(b)
}

/// A random `u32` from the operating system.
pub fn random_u32() -> Result<u32, String> {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).map_err(|e| format!("the system random source failed: {e}"))?;
    Ok(u32::from_le_bytes(b))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parses exactly 32 bytes of hex; `what` names the field in the error.
pub fn unhex32(what: &str, text: &str) -> Result<[u8; 32], String> {
    let t = text.trim();
    if t.len() != 64 || !t.is_ascii() {
        return Err(format!(
            "{what}: expected 64 hex digits (32 bytes), found {} characters",
            t.len()
        ));
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        let pair = t.get(2 * i..2 * i + 2).unwrap_or("");
        *o = u8::from_str_radix(pair, 16)
            .map_err(|_| format!("{what}: '{pair}' is not a hex byte"))?;
    }
    Ok(out)
}

/// Writes `bytes` to `path` atomically with mode 0600: a temporary file in the same
/// directory, fsync, rename over `path`, fsync of the directory. A reader (or a power
/// cut) sees the old file or the new one, never a mixture.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.tmp"));
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    drop(f);
    fs::rename(&tmp, path).map_err(fail)?;
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Refuses a private file that group or others may read or write (like ssh does).
pub fn check_private(path: &Path) -> Result<(), String> {
    let meta = fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "key file {} has permissions {mode:04o}: it is accessible by group or others, so \
             the key may have been copied; refusing to use it. Fix with: chmod 600 {}",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

/// What kind of device a key file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    /// A clinician programmer.
    Programmer,
    /// A patient (or emergency) remote.
    Remote,
}

impl DeviceKind {
    /// The `thecal` subcommand of this kind of device.
    pub fn command(self) -> &'static str {
        match self {
            DeviceKind::Programmer => "programmer",
            DeviceKind::Remote => "remote",
        }
    }
}

/// The pump a device is enrolled with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pairing {
    /// The implant's static public key, hex.
    pub implant_key: String,
    /// This device's pre-authentication key, hex.
    pub preauth: String,
    /// This device's key id.
    pub key_id: u32,
    /// The pump's address (`HOST:PORT`) at enrolment, used when `--implant` is not given.
    #[serde(default)]
    pub address: Option<String>,
}

/// A device key file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    /// What the key is for.
    pub kind: DeviceKind,
    /// The static X25519 secret, hex.
    pub secret: String,
    /// The static public key, hex (for reference; derived from the secret).
    pub public: String,
    /// The pump this device is enrolled with, once enrolled.
    #[serde(default)]
    pub pairing: Option<Pairing>,
    /// The last handshake counter used (saved before each hello is sent).
    #[serde(default)]
    pub counter: u64,
    /// A patient bolus request sent without an answer yet: a retry reuses its id.
    #[serde(default)]
    pub pending_bolus: Option<u32>,
    /// A station's pairings, one per pump it is enrolled with, by the pump's name (the
    /// clinic's pump serial). The command-line programmer uses [`KeyFile::pairing`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pairings: BTreeMap<String, Pairing>,
}

/// A loaded key file and where it lives.
#[derive(Debug)]
pub struct Key {
    /// The file.
    pub path: PathBuf,
    /// Its contents.
    pub file: KeyFile,
    /// The key pair.
    pub keys: StaticKeypair,
}

impl Key {
    /// Creates a new key file with a fresh key (refuses to overwrite one).
    pub fn generate(path: &Path, kind: DeviceKind) -> Result<Key, String> {
        if path.exists() {
            return Err(format!(
                "{} already exists; refusing to overwrite a key (delete it first if it is \
                 really unused)",
                path.display()
            ));
        }
        let secret = random32()?;
        let keys = StaticKeypair::from_secret(secret).map_err(|e| format!("key setup: {e}"))?;
        let file = KeyFile {
            kind,
            secret: hex(&secret),
            public: hex(&keys.public().0),
            pairing: None,
            counter: 0,
            pending_bolus: None,
            pairings: BTreeMap::new(),
        };
        let key = Key {
            path: path.to_path_buf(),
            file,
            keys,
        };
        key.save()?;
        Ok(key)
    }

    /// Loads a key file of `kind`, checking its permissions first.
    pub fn load(path: &Path, kind: DeviceKind) -> Result<Key, String> {
        if !path.exists() {
            return Err(format!(
                "no key file at {}: create one with `thecal {} keygen --key {}`",
                path.display(),
                kind.command(),
                path.display()
            ));
        }
        check_private(path)?;
        let meta = fs::symlink_metadata(path)
            .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
        let me = fs::metadata("/proc/self").map_or(meta.uid(), |m| m.uid());
        if meta.uid() != me {
            return Err(format!(
                "key file {} belongs to user id {}, not to you ({me}): refusing to use it",
                path.display(),
                meta.uid()
            ));
        }
        let text = fs::read_to_string(path)
            .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
        let file: KeyFile = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a thecal key file: {e}", path.display()))?;
        if file.kind != kind {
            return Err(format!(
                "{} is a {} key, but `thecal {}` needs a {} key: give the {} key file, or \
                 create one with `thecal {} keygen --key FILE`",
                path.display(),
                file.kind.command(),
                kind.command(),
                kind.command(),
                kind.command(),
                kind.command()
            ));
        }
        let secret = unhex32(&format!("{}: secret", path.display()), &file.secret)?;
        let keys = StaticKeypair::from_secret(secret).map_err(|e| format!("key setup: {e}"))?;
        Ok(Key {
            path: path.to_path_buf(),
            file,
            keys,
        })
    }

    /// Writes the key file back (atomically, 0600).
    pub fn save(&self) -> Result<(), String> {
        let text = serde_json::to_string_pretty(&self.file).map_err(|e| e.to_string())?;
        write_private(&self.path, text.as_bytes())
    }

    /// This device's key id (derived from its public key).
    pub fn key_id(&self) -> u32 {
        key_id_for(self.keys.public())
    }

    /// The pairing, or an error saying how to enrol.
    pub fn pairing(&self) -> Result<(PublicKey, [u8; 32], u32), String> {
        let p = self.file.pairing.as_ref().ok_or_else(|| {
            format!(
                "{} is not enrolled with a pump yet: enrol it first (`thecal {} enroll ...`)",
                self.path.display(),
                self.file.kind.command()
            )
        })?;
        Ok((
            PublicKey(unhex32("implant_key", &p.implant_key)?),
            unhex32("preauth", &p.preauth)?,
            p.key_id,
        ))
    }

    /// The hello of the station's pairing with the pump named `name`.
    pub fn hello_for(&self, name: &str) -> Result<crate::bearer::Hello, String> {
        let p = self.file.pairings.get(name).ok_or_else(|| {
            format!(
                "this programmer is not enrolled with the pump {name}: enrol it with the wand first"
            )
        })?;
        Ok(crate::bearer::Hello::Paired {
            implant: PublicKey(unhex32("implant_key", &p.implant_key)?),
            preauth: unhex32("preauth", &p.preauth)?,
            key_id: p.key_id,
        })
    }

    /// The next handshake counter (greater than the last one and at least the Unix time
    /// in milliseconds), saved before it is used.
    pub fn next_counter(&mut self) -> Result<u64, String> {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let c = self.file.counter.saturating_add(1).max(ms);
        self.file.counter = c;
        self.save()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("thecal-keyfile-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_new_key_is_private_and_loads() {
        let d = tmpdir("new");
        let p = d.join("k.key");
        let k = Key::generate(&p, DeviceKind::Programmer).unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let l = Key::load(&p, DeviceKind::Programmer).unwrap();
        assert_eq!(l.keys.public(), k.keys.public());
        assert!(Key::generate(&p, DeviceKind::Programmer).is_err());
    }

    #[test]
    fn a_key_readable_by_others_is_refused() {
        let d = tmpdir("perm");
        let p = d.join("k.key");
        Key::generate(&p, DeviceKind::Remote).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        let e = Key::load(&p, DeviceKind::Remote).unwrap_err();
        assert!(e.contains("0644") && e.contains("chmod 600"), "{e}");
    }

    #[test]
    fn a_missing_key_says_how_to_create_one() {
        let d = tmpdir("missing");
        let e = Key::load(&d.join("none.key"), DeviceKind::Remote).unwrap_err();
        assert!(e.contains("thecal remote keygen --key"), "{e}");
    }

    #[test]
    fn counters_only_increase() {
        let d = tmpdir("counter");
        let p = d.join("k.key");
        let mut k = Key::generate(&p, DeviceKind::Programmer).unwrap();
        k.file.counter = u64::MAX - 5;
        let a = k.next_counter().unwrap();
        let b = k.next_counter().unwrap();
        assert!(b > a);
        assert_eq!(
            Key::load(&p, DeviceKind::Programmer).unwrap().file.counter,
            b
        );
    }

    #[test]
    fn a_key_of_the_wrong_kind_is_refused_up_front_link_024() {
        let d = tmpdir("kind");
        let p = d.join("remote.key");
        Key::generate(&p, DeviceKind::Remote).unwrap();
        let e = Key::load(&p, DeviceKind::Programmer).unwrap_err();
        assert!(
            e.contains("is a remote key") && e.contains("thecal programmer keygen"),
            "{e}"
        );
        assert!(Key::load(&p, DeviceKind::Remote).is_ok());
    }

    #[test]
    fn hex_round_trips() {
        let b = [0xabu8; 32];
        assert_eq!(unhex32("x", &hex(&b)).unwrap(), b);
        assert!(unhex32("x", "zz").is_err());
    }
}
