//! `outpost-plugin-snmpsim`: an upgrade plug-in for test devices simulated
//! by snmpsim, so upgrade jobs can be exercised end to end without
//! hardware.
//!
//! Options: `data_dir` (snmpsim's data directory; required) and
//! `reboot_secs` (how long the simulated reboot takes; default 3). The
//! device's data file is `<data_dir>/<credentials>.snmprec` (its v2c
//! community is the file's name). A simulated firmware image is a text
//! file:
//!
//! ```text
//! outpost-simulated-firmware
//! model=C9300-48P
//! version=17.12.1
//! boots=yes
//! ```
//!
//! Steps:
//! * `pre_check`: the data file exists; the image's header is valid; its
//!   model is the device's (ignoring case) and its version the target.
//! * `transfer`: copies it to `<data_dir>/<device>.flash/<sha256>.bin`.
//! * `verify`: the copy's SHA-256 equals the contract's.
//! * `set_boot`: writes `<data_dir>/<device>.flash/boot` naming it.
//! * `reload`: keeps the data file in the flash directory
//!   (`running.snmprec`) and replaces it with one whose every record drops
//!   the request (snmpsim's `delay` variation, `wait` over 99999 ms: no
//!   answer at all; moving the file away makes snmpsim 0.4 crash), so the
//!   device stops answering, and starts a
//!   detached boot process (this program's hidden `boot` subcommand, in a
//!   process group of its own, outliving the plug-in) that sleeps
//!   `reboot_secs` and then, if the boot image says `boots=yes`, writes the
//!   data file back with the new version in `sysDescr.0` (the old version
//!   token replaced; tags `4` and `4x`) and in every chassis row's
//!   `entPhysicalSoftwareRev`, atomically and with a modification time at
//!   least a second after the old one (snmpsim re-reads a file by its
//!   mtime). With `boots=no` the device stays down for ever, and so does a
//!   unit whose flash directory holds a file named `faulty` (a simulated
//!   hardware defect: one bad unit among good ones, whatever the image).
//!
//! The plug-in prints `reload ok` and exits 0 right after starting the
//! boot: confirming the new version is the agent's business (`confirm =
//! "snmp"`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, SystemTime};

use outpost_agent::plugin_kit::{self, emit, step, Contract, Status, Step};

const MAGIC: &str = "outpost-simulated-firmware";
/// A file of this name in a device's flash directory simulates a unit
/// whose hardware fails on reboot: it never comes back, whatever the image.
const FAULTY: &str = "faulty";
const SYS_DESCR: &str = "1.3.6.1.2.1.1.1.0";
const ENT_CLASS: &str = "1.3.6.1.2.1.47.1.1.1.1.5.";
const ENT_SOFTWARE_REV: &str = "1.3.6.1.2.1.47.1.1.1.1.10.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("boot") => boot(&args[1..]),
        _ => run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("outpost-plugin-snmpsim: {why}");
            ExitCode::FAILURE
        }
    }
}

/// A simulated firmware image's header.
#[derive(Debug)]
struct Image {
    model: String,
    version: String,
    boots: bool,
}

fn read_image(path: &Path) -> Result<Image, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the image {}: {e}", path.display()))?;
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(MAGIC) {
        return Err(format!(
            "the image {} is not a simulated firmware (its first line is not {MAGIC:?})",
            path.display()
        ));
    }
    let (mut model, mut version, mut boots) = (None, None, None);
    for line in lines.map(str::trim).filter(|l| !l.is_empty()) {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("the image's line {line:?} is not key=value"))?;
        match key.trim() {
            "model" => model = Some(value.trim().to_owned()),
            "version" => version = Some(value.trim().to_owned()),
            "boots" => {
                boots = Some(match value.trim() {
                    "yes" => true,
                    "no" => false,
                    other => return Err(format!("the image's boots={other:?} must be yes or no")),
                })
            }
            other => return Err(format!("the image has an unknown key {other:?}")),
        }
    }
    Ok(Image {
        model: model.ok_or("the image has no model=")?,
        version: version.ok_or("the image has no version=")?,
        boots: boots.ok_or("the image has no boots=")?,
    })
}

struct Options {
    data_dir: PathBuf,
    reboot_secs: u64,
}

fn options(contract: &Contract) -> Result<Options, String> {
    let map = contract
        .options
        .as_object()
        .ok_or("options must be a table with data_dir")?;
    let mut data_dir = None;
    let mut reboot_secs = 3;
    for (key, value) in map {
        match key.as_str() {
            "data_dir" => {
                data_dir = Some(PathBuf::from(value.as_str().ok_or_else(|| {
                    format!("options.data_dir must be a string, got {value}")
                })?))
            }
            "reboot_secs" => {
                reboot_secs = value
                    .as_u64()
                    .filter(|s| *s <= 3600)
                    .ok_or_else(|| format!("options.reboot_secs must be 0..=3600, got {value}"))?
            }
            other => {
                return Err(format!(
                "options.{other} is not an option of this plug-in (known: data_dir, reboot_secs)"
            ))
            }
        }
    }
    Ok(Options {
        data_dir: data_dir.ok_or("options.data_dir is missing (snmpsim's data directory)")?,
        reboot_secs,
    })
}

/// No path separators or dots-only names in file names built from the contract.
fn file_name(kind: &str, name: &str) -> Result<String, String> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(format!("the {kind} {name:?} cannot name a file"));
    }
    Ok(name.to_owned())
}

fn run() -> Result<(), String> {
    let contract = match plugin_kit::read_contract() {
        Ok(c) => c,
        Err(why) => {
            emit(Step::PreCheck, Status::Failed, &why, None);
            return Err(why);
        }
    };
    let mut checked = None;
    step(Step::PreCheck, || {
        let opts = options(&contract)?;
        let credentials = file_name("credentials", &contract.device.credentials)?;
        let device = file_name("device", &contract.device.name)?;
        let data = opts.data_dir.join(format!("{credentials}.snmprec"));
        if !data.is_file() {
            return Err(format!(
                "the device's data file {} does not exist",
                data.display()
            ));
        }
        let image = read_image(&contract.image.path)?;
        if !image.model.eq_ignore_ascii_case(&contract.device.model) {
            return Err(format!(
                "the image is for model {}, the device is a {}",
                image.model, contract.device.model
            ));
        }
        if image.version != contract.target_version {
            return Err(format!(
                "the image holds version {}, the job's target is {}",
                image.version, contract.target_version
            ));
        }
        let flash = opts.data_dir.join(format!("{device}.flash"));
        let detail = format!(
            "image {} {} (boots={}) for {}",
            image.model,
            image.version,
            if image.boots { "yes" } else { "no" },
            data.display()
        );
        checked = Some((opts, data, flash));
        Ok(detail)
    })?;
    let (opts, data, flash) = checked.ok_or("internal error")?;
    let copy = flash.join(format!("{}.bin", contract.image.sha256));
    step(Step::Transfer, || {
        std::fs::create_dir_all(&flash)
            .map_err(|e| format!("cannot create {}: {e}", flash.display()))?;
        std::fs::copy(&contract.image.path, &copy)
            .map_err(|e| format!("cannot copy the image to {}: {e}", copy.display()))?;
        Ok(format!("copied to {}", copy.display()))
    })?;
    step(Step::Verify, || {
        let digest = plugin_kit::sha256_file(&copy)?;
        if digest != contract.image.sha256 {
            return Err(format!(
                "the copy's SHA-256 is {digest}, the contract's {}",
                contract.image.sha256
            ));
        }
        Ok("SHA-256 of the copy on flash matches".into())
    })?;
    step(Step::SetBoot, || {
        let boot = flash.join("boot");
        outpost_agent::fsutil::write_atomic(
            &boot,
            format!("{}.bin\n", contract.image.sha256).as_bytes(),
            None,
        )
        .map_err(|e| format!("cannot write {}: {e}", boot.display()))?;
        Ok(format!("boot image {}.bin", contract.image.sha256))
    })?;
    step(Step::Reload, || {
        // The running configuration is kept in the flash directory; the
        // data file is replaced by one whose every record drops the request
        // (snmpsim's `delay` variation with a wait over 99999 ms answers
        // nothing), so the device stops answering. (Moving the file away
        // instead makes snmpsim 0.4 crash as a whole on the next request.)
        let saved = flash.join("running.snmprec");
        let text = std::fs::read_to_string(&data)
            .map_err(|e| format!("cannot read {}: {e}", data.display()))?;
        outpost_agent::fsutil::write_atomic(&saved, text.as_bytes(), Some(0o644))
            .map_err(|e| format!("cannot write {}: {e}", saved.display()))?;
        replace_data_file(&data, &flash, &silent(&text))?;
        let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
        let mut command = Command::new(exe);
        command
            .arg("boot")
            .arg(&data)
            .arg(&flash)
            .arg(opts.reboot_secs.to_string())
            .arg(contract.device.current_version.clone().unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        command.spawn().map_err(|e| {
            // Put the device back rather than leave it down.
            let _ = replace_data_file(&data, &flash, &text);
            format!("cannot start the boot process: {e}")
        })?;
        Ok(format!(
            "reloading; back in {}s if the image boots",
            opts.reboot_secs
        ))
    })?;
    Ok(())
}

/// The snmprec text with every record made to drop requests (the device is
/// down).
fn silent(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for line in text.lines() {
        let mut parts = line.splitn(3, '|');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(oid), Some(tag), Some(_)) if !oid.trim().is_empty() && !oid.starts_with('#') => {
                let tag = tag.split(':').next().unwrap_or(tag);
                out.push_str(&format!("{oid}|{tag}:delay|wait=100000\n"));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Replaces the data file atomically, with a modification time at least a
/// second after the one it replaces (snmpsim re-reads a data file when its
/// mtime, in whole seconds, moves).
fn replace_data_file(data: &Path, flash: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let old_mtime = std::fs::metadata(data)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mtime = SystemTime::now().max(old_mtime + Duration::from_secs(1));
    let tmp = flash.join("replacing.snmprec");
    {
        let mut file = std::fs::File::create(&tmp)
            .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.set_modified(mtime))
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // snmpsim may read as another user (nobody).
        let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644));
    }
    std::fs::rename(&tmp, data).map_err(|e| format!("cannot replace {}: {e}", data.display()))?;
    outpost_agent::fsutil::sync_dir(outpost_agent::fsutil::parent(data))
        .map_err(|e| format!("cannot sync {}: {e}", data.display()))
}

/// The hidden `boot DATA_FILE FLASH_DIR REBOOT_SECS OLD_VERSION`: the
/// simulated reboot.
fn boot(args: &[String]) -> Result<(), String> {
    let [data, flash, secs, old] = args else {
        return Err("usage: boot DATA_FILE FLASH_DIR REBOOT_SECS OLD_VERSION".into());
    };
    let (data, flash) = (PathBuf::from(data), PathBuf::from(flash));
    let secs: u64 = secs
        .parse()
        .map_err(|_| format!("bad REBOOT_SECS {secs:?}"))?;
    std::thread::sleep(Duration::from_secs(secs));
    let boot_name =
        std::fs::read_to_string(flash.join("boot")).map_err(|e| format!("no boot image: {e}"))?;
    let image = read_image(&flash.join(boot_name.trim()))?;
    if !image.boots {
        // The device never comes back.
        return Ok(());
    }
    if flash.join(FAULTY).exists() {
        // A unit with a hardware defect: whatever the image, it never
        // boots again.
        return Ok(());
    }
    let saved = flash.join("running.snmprec");
    let text = std::fs::read_to_string(&saved)
        .map_err(|e| format!("cannot read {}: {e}", saved.display()))?;
    let rewritten = rewrite(&text, old, &image.version)?;
    replace_data_file(&data, &flash, &rewritten)?;
    // The new image is the running one from now on.
    outpost_agent::fsutil::write_atomic(&saved, rewritten.as_bytes(), Some(0o644))
        .map_err(|e| format!("cannot write {}: {e}", saved.display()))
}

/// The snmprec text with sysDescr's version token and every chassis row's
/// software revision set to `new`.
fn rewrite(text: &str, old: &str, new: &str) -> Result<String, String> {
    let chassis: Vec<String> = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, '|');
            let oid = parts.next()?;
            let index = oid.strip_prefix(ENT_CLASS)?;
            let _tag = parts.next()?;
            (parts.next()?.trim() == "3").then(|| index.to_owned())
        })
        .collect();
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        let mut parts = line.splitn(3, '|');
        let (oid, tag, value) = match (parts.next(), parts.next(), parts.next()) {
            (Some(o), Some(t), Some(v)) => (o, t, v),
            _ => {
                out.push_str(line);
                out.push('\n');
                continue;
            }
        };
        if oid == SYS_DESCR {
            let descr = match tag {
                "4" => value.to_owned(),
                "4x" => String::from_utf8_lossy(
                    &hex::decode(value.trim())
                        .map_err(|e| format!("sysDescr.0 is not hex: {e}"))?,
                )
                .into_owned(),
                other => {
                    return Err(format!(
                        "sysDescr.0 has the tag {other:?}; only 4 and 4x are handled"
                    ))
                }
            };
            let descr = replace_version(&descr, old, new);
            match tag {
                "4" => out.push_str(&format!("{oid}|4|{descr}\n")),
                _ => out.push_str(&format!("{oid}|4x|{}\n", hex::encode(descr.as_bytes()))),
            }
            continue;
        }
        if let Some(index) = oid.strip_prefix(ENT_SOFTWARE_REV) {
            if chassis.iter().any(|c| c == index) {
                out.push_str(&format!("{oid}|4|{new}\n"));
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

/// `descr` with the old version token (the given one, else the word after
/// "Version") replaced by `new`; `", Version NEW"` appended when there is
/// none.
fn replace_version(descr: &str, old: &str, new: &str) -> String {
    use outpost_agent::jobs::confirm::{has_token, version_after_word};
    let old = if !old.is_empty() && has_token(descr, old) {
        Some(old.to_owned())
    } else {
        version_after_word(descr)
    };
    match old {
        Some(old) => {
            // Replace whole-token occurrences only.
            let mut out = String::with_capacity(descr.len() + new.len());
            let mut rest = descr;
            let part = |c: char| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '+');
            while let Some(at) = rest.find(&old) {
                let before_ok = rest[..at].chars().next_back().is_none_or(|c| !part(c));
                let after = &rest[at + old.len()..];
                let mut next = after.chars();
                let after_ok = match next.next() {
                    None => true,
                    Some('.') => next.next().is_none_or(|c| !part(c)),
                    Some(c) => !part(c),
                };
                out.push_str(&rest[..at]);
                out.push_str(if before_ok && after_ok { new } else { &old });
                rest = after;
            }
            out.push_str(rest);
            out
        }
        None => format!("{descr}, Version {new}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &str = "# a comment|with|bars\n\
1.3.6.1.2.1.1.1.0|4|Cisco IOS Software, Version 17.9.4a, RELEASE SOFTWARE (fc3)\n\
1.3.6.1.2.1.47.1.1.1.1.5.1|2|3\n\
1.3.6.1.2.1.47.1.1.1.1.5.2|2|6\n\
1.3.6.1.2.1.47.1.1.1.1.5.3|2|3\n\
1.3.6.1.2.1.47.1.1.1.1.10.1|4|17.09.04a\n\
1.3.6.1.2.1.47.1.1.1.1.10.2|4|\n\
1.3.6.1.2.1.47.1.1.1.1.10.3|4x|3137\n";

    #[test]
    fn the_new_version_goes_into_sysdescr_and_chassis_rows_only() {
        let out = rewrite(DATA, "17.09.04a", "17.12.1").unwrap();
        assert!(out.contains(
            "1.3.6.1.2.1.1.1.0|4|Cisco IOS Software, Version 17.12.1, RELEASE SOFTWARE (fc3)\n"
        ));
        assert!(out.contains("1.3.6.1.2.1.47.1.1.1.1.10.1|4|17.12.1\n"));
        assert!(
            out.contains("1.3.6.1.2.1.47.1.1.1.1.10.2|4|\n"),
            "not a chassis"
        );
        assert!(
            out.contains("1.3.6.1.2.1.47.1.1.1.1.10.3|4|17.12.1\n"),
            "second chassis"
        );
        assert!(out.starts_with("# a comment|with|bars\n"));
    }

    #[test]
    fn hex_sysdescr_and_whole_tokens() {
        let hex_descr = hex::encode("JUNOS 21.4R3 built; 21.4R3.5 kept".as_bytes());
        let data = format!("1.3.6.1.2.1.1.1.0|4x|{hex_descr}\n");
        let out = rewrite(&data, "21.4R3", "22.2R1").unwrap();
        let value = out.trim().rsplit('|').next().unwrap();
        assert_eq!(
            String::from_utf8(hex::decode(value).unwrap()).unwrap(),
            "JUNOS 22.2R1 built; 21.4R3.5 kept"
        );
        assert_eq!(
            replace_version("no version", "", "1.0"),
            "no version, Version 1.0"
        );
        assert!(rewrite("1.3.6.1.2.1.1.1.0|6|1.3.6\n", "", "1").is_err());
    }

    #[test]
    fn a_silent_device_drops_every_record() {
        let out = silent(DATA);
        assert!(out.starts_with("# a comment|with|bars\n"));
        assert!(out.contains("1.3.6.1.2.1.47.1.1.1.1.10.3|4x:delay|wait=100000\n"));
        assert_eq!(out.matches(":delay|wait=100000").count(), 7);
    }

    #[test]
    fn images_are_read_strictly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fw");
        std::fs::write(
            &path,
            "outpost-simulated-firmware\nmodel=A\nversion=1\nboots=yes\n",
        )
        .unwrap();
        let image = read_image(&path).unwrap();
        assert_eq!(
            (image.model.as_str(), image.version.as_str(), image.boots),
            ("A", "1", true)
        );
        std::fs::write(
            &path,
            "outpost-simulated-firmware\nmodel=A\nversion=1\nboots=maybe\n",
        )
        .unwrap();
        assert!(read_image(&path).unwrap_err().contains("boots"));
        std::fs::write(&path, "outpost-simulated-firmware\nmodel=A\nboots=no\n").unwrap();
        assert!(read_image(&path).unwrap_err().contains("version"));
    }
}
