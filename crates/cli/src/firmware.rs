//! `thecal firmware`: the maker's signing tool for implant firmware images
//! (docs/firmware-update.md): `keygen`, `sign`, `verify`, `inspect`, and the key
//! statements `rotate` and `revoke`.
//!
//! Exit status: 0 done (an image that verifies), 1 an image that is refused (the reason
//! on one line), 2 bad input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use serde_json::json;
use thecal_programmer::firmware::KeyStatement;
use thecal_programmer::keyfile::{check_private, hex, random32, unhex32, write_private};
use thecal_pump::profile::HardwareProfile;
use thecal_update::image::{self, Policy};
use thecal_update::keys::key_hash;
use thecal_update::{HardwareId, Manifest, TrustList, Version};

/// Arguments of `thecal firmware`.
#[derive(Debug, Args)]
pub struct FirmwareArgs {
    #[command(subcommand)]
    command: FirmwareCommand,
}

#[derive(Debug, Subcommand)]
enum FirmwareCommand {
    /// Create a signing key: FILE (secret, mode 0600) and FILE.pub (the public key in hex).
    Keygen {
        /// The key file to create (refused if it exists).
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a firmware body into an image.
    Sign {
        /// The signing key file (from `keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The image's version, MAJOR.MINOR.REVISION[+BUILD].
        #[arg(long)]
        image_version: String,
        /// The security counter: the implant refuses any image below its own.
        #[arg(long, allow_hyphen_values = true)]
        security_counter: u32,
        /// The hardware it is for: synchromed-20, synchromed-40, prometra-20, prometra-40,
        /// external.
        #[arg(long)]
        hardware: String,
        /// The image file to write.
        #[arg(long)]
        out: PathBuf,
        /// The firmware body.
        body: PathBuf,
    },
    /// Verify an image as an implant would.
    Verify {
        /// A trusted public key: 64 hex digits or a `.pub` file (repeatable).
        #[arg(long = "trusted-key", required = true)]
        trusted_key: Vec<String>,
        /// The implant's hardware.
        #[arg(long)]
        hardware: String,
        /// The implant's security counter (default 0).
        #[arg(long, default_value_t = 0)]
        min_counter: u32,
        /// The version the implant runs: an older image is refused.
        #[arg(long)]
        running: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// The image.
        image: PathBuf,
    },
    /// Write a key rotation statement: the new public key, signed by the old key (which
    /// the implant then revokes). Send it with `thecal programmer rotate-key FILE`.
    Rotate {
        /// The old signing key file (trusted by the implant).
        #[arg(long)]
        old_key: PathBuf,
        /// The new public key: 64 hex digits or a `.pub` file (from `keygen`).
        #[arg(long)]
        new_pub: String,
        /// The statement file to write (refused if it exists).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a key revocation statement: the key to revoke, signed by a trusted signing
    /// key (itself or another). Send it with `thecal programmer revoke-key FILE`.
    Revoke {
        /// The signing key file that signs the statement (trusted by the implant).
        #[arg(long)]
        key: PathBuf,
        /// The public key to revoke: 64 hex digits or a `.pub` file.
        #[arg(long)]
        revoke_pub: String,
        /// The statement file to write (refused if it exists).
        #[arg(long)]
        out: PathBuf,
    },
    /// Show an image's header and TLVs, and whether its digest matches.
    Inspect {
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// The image.
        image: PathBuf,
    },
}

/// A signing key file.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    kind: String,
    secret: String,
    public: String,
}

const KEY_KIND: &str = "firmware-signing";

/// The largest image the implant's slot holds.
pub const SLOT_SIZE: usize = thecal_update::updater::REFERENCE_SLOT_SIZE as usize;

/// Runs `thecal firmware`; `Err` is a one-line message for exit status 2.
pub fn run(args: FirmwareArgs) -> Result<ExitCode, String> {
    match args.command {
        FirmwareCommand::Keygen { out } => keygen(&out),
        FirmwareCommand::Sign {
            key,
            image_version,
            security_counter,
            hardware,
            out,
            body,
        } => sign(
            &key,
            &image_version,
            security_counter,
            &hardware,
            &out,
            &body,
        ),
        FirmwareCommand::Verify {
            trusted_key,
            hardware,
            min_counter,
            running,
            json,
            image,
        } => verify(
            &trusted_key,
            &hardware,
            min_counter,
            running.as_deref(),
            json,
            &image,
        ),
        FirmwareCommand::Inspect { json, image } => inspect(&image, json),
        FirmwareCommand::Rotate {
            old_key,
            new_pub,
            out,
        } => rotate(&old_key, &new_pub, &out),
        FirmwareCommand::Revoke {
            key,
            revoke_pub,
            out,
        } => revoke(&key, &revoke_pub, &out),
    }
}

/// A public key argument: 64 hex digits or a `.pub` file.
fn public_key(arg: &str, text: &str) -> Result<[u8; 32], String> {
    let t = text.trim();
    let key = if t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit()) {
        unhex32(arg, t)?
    } else {
        let file = std::fs::read_to_string(t).map_err(|e| {
            format!("{arg} {t}: neither 64 hex digits nor a readable .pub file ({e})")
        })?;
        unhex32(&format!("{arg} {t}"), &file)?
    };
    if !thecal_update::keys::valid_key(&key) {
        return Err(format!(
            "{arg} {t}: not a valid Ed25519 public key (or a weak, small-order one)"
        ));
    }
    Ok(key)
}

fn write_statement(out: &Path, statement: &KeyStatement) -> Result<(), String> {
    if out.exists() {
        return Err(format!(
            "--out {}: the file exists; a statement is never overwritten",
            out.display()
        ));
    }
    std::fs::write(out, statement.to_text())
        .map_err(|e| format!("--out {}: cannot write: {e}", out.display()))
}

fn rotate(old_key: &Path, new_pub: &str, out: &Path) -> Result<ExitCode, String> {
    let new = public_key("--new-pub", new_pub)?;
    let old = load_key_arg("--old-key", old_key)?;
    let old_pub = old.verifying_key().to_bytes();
    if old_pub == new {
        return Err("--new-pub: the new key is the old key; a rotation needs another key".into());
    }
    let statement = KeyStatement::Rotation {
        old: old_pub,
        new,
        signature: thecal_update::keys::sign_rotation(&old, &new),
    };
    write_statement(out, &statement)?;
    println!(
        "rotation statement: {}
  old key {} (hash {}) is revoked
  new key {} (hash {}) is trusted
         send it with: thecal programmer ... rotate-key {}",
        out.display(),
        hex(&old_pub),
        hex(&key_hash(&old_pub)[..8]),
        hex(&new),
        hex(&key_hash(&new)[..8]),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn revoke(key: &Path, revoke_pub: &str, out: &Path) -> Result<ExitCode, String> {
    let subject = public_key("--revoke-pub", revoke_pub)?;
    let signer = load_key_arg("--key", key)?;
    let signer_pub = signer.verifying_key().to_bytes();
    let statement = KeyStatement::Revocation {
        key: subject,
        signer: signer_pub,
        signature: thecal_update::keys::sign_revocation(&signer, &subject),
    };
    write_statement(out, &statement)?;
    println!(
        "revocation statement: {}
  key {} (hash {}) is revoked, signed by {} (hash {})
         send it with: thecal programmer ... revoke-key {}",
        out.display(),
        hex(&subject),
        hex(&key_hash(&subject)[..8]),
        hex(&signer_pub),
        hex(&key_hash(&signer_pub)[..8]),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn pub_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

fn keygen(out: &Path) -> Result<ExitCode, String> {
    if out.exists() {
        return Err(format!(
            "--out {}: the file exists; a signing key is never overwritten",
            out.display()
        ));
    }
    let key = SigningKey::from_bytes(&random32()?);
    let public = key.verifying_key().to_bytes();
    let file = KeyFile {
        kind: KEY_KIND.into(),
        secret: hex(&key.to_bytes()),
        public: hex(&public),
    };
    let text = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
    write_private(out, text.as_bytes())?;
    let pubfile = pub_path(out);
    std::fs::write(&pubfile, format!("{}\n", hex(&public)))
        .map_err(|e| format!("cannot write {}: {e}", pubfile.display()))?;
    println!("signing key: {} (keep it secret)", out.display());
    println!("public key:  {} ({})", hex(&public), pubfile.display());
    println!("key hash:    {}", hex(&key_hash(&public)));
    Ok(ExitCode::SUCCESS)
}

fn load_key(path: &Path) -> Result<SigningKey, String> {
    load_key_arg("--key", path)
}

fn load_key_arg(arg: &str, path: &Path) -> Result<SigningKey, String> {
    check_private(path)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{arg} {}: cannot read: {e}", path.display()))?;
    let file: KeyFile = serde_json::from_str(&text).map_err(|_| {
        format!(
            "{arg} {}: not a firmware signing key file (create one with `thecal firmware keygen`)",
            path.display()
        )
    })?;
    if file.kind != KEY_KIND {
        return Err(format!(
            "{arg} {}: a {} key, not a firmware signing key",
            path.display(),
            file.kind
        ));
    }
    let key = SigningKey::from_bytes(&unhex32(&format!("{arg} secret"), &file.secret)?);
    if hex(&key.verifying_key().to_bytes()) != file.public {
        return Err(format!(
            "{arg} {}: the public key does not belong to the secret key",
            path.display()
        ));
    }
    Ok(key)
}

fn hardware(text: &str) -> Result<HardwareId, String> {
    if HardwareProfile::by_model(text).is_none() {
        return Err(format!(
            "--hardware {text}: unknown hardware; one of {}",
            HardwareProfile::MODELS
        ));
    }
    HardwareId::new(&text.trim().to_ascii_lowercase())
        .ok_or_else(|| format!("--hardware {text}: not a hardware id"))
}

fn version(arg: &str, text: &str) -> Result<Version, String> {
    Version::parse(text).ok_or_else(|| {
        format!(
            "{arg} {text}: expected MAJOR.MINOR.REVISION or MAJOR.MINOR.REVISION+BUILD (e.g. 1.2.0)"
        )
    })
}

fn read(arg: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{arg}{}: cannot read: {e}", path.display()))
}

fn sign(
    key: &Path,
    version_text: &str,
    security_counter: u32,
    hardware_text: &str,
    out: &Path,
    body: &Path,
) -> Result<ExitCode, String> {
    let manifest = Manifest {
        version: version("--image-version", version_text)?,
        security_counter,
        hardware: hardware(hardware_text)?,
    };
    let key = load_key(key)?;
    let body = read("", body)?;
    let len = image::signed_len(body.len(), &manifest)
        .filter(|n| *n <= SLOT_SIZE)
        .ok_or_else(|| {
            format!(
                "the body of {} bytes makes an image larger than the implant's {SLOT_SIZE}-byte slot",
                body.len()
            )
        })?;
    let mut img = vec![0u8; len];
    image::sign(&body, &manifest, &key, &mut img).map_err(|e| e.to_string())?;
    std::fs::write(out, &img).map_err(|e| format!("--out {}: cannot write: {e}", out.display()))?;
    println!(
        "signed {} ({} bytes): version {}, security counter {}, hardware {}, key {}",
        out.display(),
        img.len(),
        manifest.version,
        manifest.security_counter,
        manifest.hardware,
        hex(&key.verifying_key().to_bytes())
    );
    Ok(ExitCode::SUCCESS)
}

/// A trusted public key: 64 hex digits or a `.pub` file.
pub fn trusted(arg: &str) -> Result<[u8; 32], String> {
    let t = arg.trim();
    if t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit()) {
        return unhex32("--trusted-key", t);
    }
    let text = std::fs::read_to_string(t).map_err(|e| {
        format!("--trusted-key {t}: neither 64 hex digits nor a readable .pub file ({e})")
    })?;
    unhex32(&format!("--trusted-key {t}"), &text)
}

fn verify(
    keys: &[String],
    hardware_text: &str,
    min_counter: u32,
    running: Option<&str>,
    json: bool,
    path: &Path,
) -> Result<ExitCode, String> {
    let keys: Vec<[u8; 32]> = keys.iter().map(|k| trusted(k)).collect::<Result<_, _>>()?;
    let trust = TrustList::new(&keys).ok_or_else(|| {
        format!(
            "--trusted-key: 1 to {} valid Ed25519 public keys expected",
            thecal_update::keys::KEYS_MAX
        )
    })?;
    let policy = Policy {
        hardware: hardware(hardware_text)?,
        min_counter,
        min_version: running.map(|r| version("--running", r)).transpose()?,
    };
    let img = read("", path)?;
    match image::verify(&img[..], &trust, &policy) {
        Ok(info) => {
            if json {
                println!("{}", json!({"verified": true, "image": info_json(&info)}));
            } else {
                println!(
                    "verified: {} version {}, security counter {}, hardware {}, signed by {}",
                    path.display(),
                    info.version,
                    info.security_counter,
                    info.hardware,
                    hex(&info.key_hash)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    json!({"verified": false, "code": e.code(), "reason": e.to_string()})
                );
            }
            eprintln!("refused: {}: {e}", path.display());
            Ok(ExitCode::from(1))
        }
    }
}

fn info_json(info: &thecal_update::ImageInfo) -> serde_json::Value {
    json!({
        "version": info.version.to_string(),
        "security_counter": info.security_counter,
        "hardware": info.hardware.as_str(),
        "body_len": info.body_len,
        "total_len": info.total_len,
        "sha256": hex(&info.digest),
        "key_hash": hex(&info.key_hash),
    })
}

fn inspect(path: &Path, json: bool) -> Result<ExitCode, String> {
    let img = read("", path)?;
    let parsed = match image::parse(&img[..]) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("refused: {}: {e}", path.display());
            return Ok(ExitCode::from(1));
        }
    };
    let digest = image::digest(&img[..], parsed.hashed_len).map_err(|e| e.to_string())?;
    let matches = digest == parsed.info.digest;
    let info = &parsed.info;
    if json {
        println!(
            "{}",
            json!({
                "image": info_json(info),
                "header": {"magic": "0x96f3b83d", "header_size": image::HEADER_LEN, "flags": 0},
                "hashed_len": parsed.hashed_len,
                "signature": hex(&parsed.signature),
                "digest_matches": matches,
            })
        );
    } else {
        println!("image        {} ({} bytes)", path.display(), info.total_len);
        println!(
            "format       MCUboot header (magic 0x96f3b83d, 32 bytes), protected and unprotected TLVs"
        );
        println!("version      {}", info.version);
        println!("body         {} bytes", info.body_len);
        println!("security     counter {}", info.security_counter);
        println!("hardware     {}", info.hardware);
        println!("key hash     {}", hex(&info.key_hash));
        println!(
            "sha256       {} ({})",
            hex(&info.digest),
            if matches {
                "matches header, body and protected TLVs"
            } else {
                "MISMATCH: the image was changed after signing"
            }
        );
        println!("ed25519      {}", hex(&parsed.signature));
    }
    Ok(if matches {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
