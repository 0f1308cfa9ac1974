//! The Debian packages (packaging/README.md): built with cargo-deb, checked
//! with `dpkg-deb --info` and `--contents`, installed into a throwaway root
//! with dpkg (maintainer scripts included), the units accepted by
//! `systemd-analyze verify`, then upgraded (config and data kept), removed
//! and purged.
//!
//! The packages hold the debug binaries the other tests run: they are copied
//! into a staging target directory as `release/` and packaged from there
//! with `--no-build --fast`, which takes seconds where a release build would
//! take minutes. A release package differs only in the binary.
//!
//! dpkg installs into the throwaway root without chroot
//! (`--force-script-chrootless`): it runs the maintainer scripts here, with
//! `DPKG_ROOT` set to the root, and they act under it (packaging/README.md).
//! The root holds no other package, so dependencies are not enforced
//! (`--force-depends`); the Depends field is checked on its own instead.
//!
//! Nothing here is skipped: this must run as root (CI does), and a missing
//! tool fails the test with the name of what `.ci/run` installs.

use anyhow::{bail, Context, Result};
use outpost_tests::bin;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PACKAGES: [&str; 2] = ["outpost-server", "outpost-agent"];

#[test]
fn debian_packages_build_install_upgrade_and_purge() -> Result<()> {
    preconditions()?;
    let work = tempfile::tempdir()?;
    let version = env!("CARGO_PKG_VERSION");
    let arch = run(Command::new("dpkg").arg("--print-architecture"))?
        .trim()
        .to_string();

    // Build: revision 1, and revision 2 for the upgrade.
    let stage = work.path().join("stage");
    std::fs::create_dir_all(stage.join("release"))?;
    // The binaries the packages ship: the two programs and the agent's
    // host plug-in.
    for binary in PACKAGES.iter().chain(&["outpost-plugin-script"]) {
        std::fs::copy(bin(binary), stage.join("release").join(binary))
            .with_context(|| format!("copying {binary} to the staging directory"))?;
    }
    let debs = work.path().join("debs");
    std::fs::create_dir_all(&debs)?;
    let deb = |package: &str, revision: u32| {
        debs.join(format!("{package}_{version}-{revision}_{arch}.deb"))
    };
    for package in PACKAGES {
        for revision in [1, 2] {
            build_deb(&stage, &debs, package, revision)?;
            let path = deb(package, revision);
            if !path.is_file() {
                bail!("cargo deb wrote no {}", path.display());
            }
        }
    }

    for package in PACKAGES {
        inspect(&deb(package, 1), package, &format!("{version}-1"), &arch)?;
    }

    // Install revision 1 of both into a throwaway root.
    let root = work.path().join("root");
    make_root(&root)?;
    dpkg(
        &root,
        &["-i"],
        &[deb("outpost-server", 1), deb("outpost-agent", 1)],
    )?;
    let (uid, gid) = installed_state(&root)?;
    for package in PACKAGES {
        assert_eq!(
            query(&root, package, "${Status} ${Version}")?,
            format!("install ok installed {version}-1"),
            "{package}"
        );
    }
    // The package owns the agent's binary (no self-update may replace it).
    assert_eq!(
        run(dpkg_cmd(&root).args(["-S", "/usr/bin/outpost-agent"]))?.trim(),
        "outpost-agent: /usr/bin/outpost-agent"
    );
    // The agent package ships the host plug-in where its docs say.
    let plugin = root.join("usr/lib/outpost-agent/plugins/outpost-plugin-script");
    assert!(plugin.is_file(), "{} installed", plugin.display());
    verify_units(&root)?;

    // The packaged binaries accept the packaged configuration files.
    let out = run(Command::new(root.join("usr/bin/outpost-server")).args([
        "config".as_ref(),
        "check".as_ref(),
        root.join("etc/outpost/outpost-server.toml").as_os_str(),
    ]))?;
    assert!(out.trim_end().ends_with("outpost-server.toml: ok"), "{out}");
    let out = run(Command::new(root.join("usr/bin/outpost-agent")).args([
        "check".as_ref(),
        "--offline".as_ref(),
        "--config".as_ref(),
        root.join("etc/outpost/outpost-agent.toml").as_os_str(),
    ]))?;
    assert!(out.trim_end().ends_with("outpost-agent.toml: ok"), "{out}");

    // Upgrade to revision 2 with a changed config and data in place.
    let server_conf = root.join("etc/outpost/outpost-server.toml");
    let agent_conf = root.join("etc/outpost/outpost-agent.toml");
    let mut text = std::fs::read_to_string(&server_conf)?;
    text = text.replace(
        "listen = \"127.0.0.1:8080\"",
        "listen = \"127.0.0.1:18080\" # changed here",
    );
    std::fs::write(&server_conf, &text)?;
    let mut agent_text = std::fs::read_to_string(&agent_conf)?;
    agent_text.push_str("\n# changed here\n");
    std::fs::write(&agent_conf, &agent_text)?;
    let server_data = root.join("var/lib/outpost/server/outpost.db");
    let agent_data = root.join("var/lib/outpost/agent/identity.json");
    std::fs::write(&server_data, "cases")?;
    std::fs::write(&agent_data, "identity")?;
    dpkg(
        &root,
        &["-i"],
        &[deb("outpost-server", 2), deb("outpost-agent", 2)],
    )?;
    for package in PACKAGES {
        assert_eq!(
            query(&root, package, "${Status} ${Version}")?,
            format!("install ok installed {version}-2"),
            "{package}"
        );
    }
    assert_eq!(std::fs::read_to_string(&server_conf)?, text);
    assert_eq!(std::fs::read_to_string(&agent_conf)?, agent_text);
    assert_eq!(std::fs::read_to_string(&server_data)?, "cases");
    assert_eq!(std::fs::read_to_string(&agent_data)?, "identity");
    assert_eq!(
        installed_state(&root)?,
        (uid, gid),
        "the same user after the upgrade"
    );

    // Remove keeps config and data; purge deletes each package's own.
    dpkg(&root, &["-r", "outpost-agent"], &[])?;
    assert!(!root.join("usr/bin/outpost-agent").exists());
    assert!(agent_conf.is_file() && agent_data.is_file());
    dpkg(&root, &["-P", "outpost-agent"], &[])?;
    assert!(!agent_conf.exists(), "purge deletes the agent's config");
    assert!(!root.join("var/lib/outpost/agent").exists());
    assert!(
        server_data.is_file() && server_conf.is_file(),
        "purging the agent leaves the server's config and data"
    );
    dpkg(&root, &["-P", "outpost-server"], &[])?;
    for gone in [
        "etc/outpost",
        "var/lib/outpost",
        "usr/bin/outpost-server",
        "usr/lib/systemd/system/outpost-server.service",
        "var/lib/systemd/deb-systemd-helper-enabled/outpost-server.service.dsh-also",
    ] {
        assert!(!root.join(gone).exists(), "{gone} is left after purge");
    }
    assert!(
        std::fs::read_to_string(root.join("etc/passwd"))?.contains("\noutpost:"),
        "the system user stays"
    );
    Ok(())
}

/// Root, and every tool the test runs, or a failure saying what is missing.
fn preconditions() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the packaging test installs packages with dpkg and must run as root (.ci/run does)");
    }
    for (tool, package) in [
        ("dpkg", "dpkg"),
        ("dpkg-deb", "dpkg"),
        ("dpkg-query", "dpkg"),
        ("dpkg-statoverride", "dpkg"),
        ("systemd-analyze", "systemd"),
        ("systemd-sysusers", "systemd"),
        ("deb-systemd-helper", "init-system-helpers"),
        ("strip", "binutils"),
    ] {
        if which(tool).is_none() {
            bail!("{tool} is missing (Debian package {package}); .ci/run installs it");
        }
    }
    let cargo_deb = Command::new(cargo())
        .args(["deb", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !cargo_deb.is_ok_and(|s| s.success()) {
        bail!("cargo-deb is missing; .ci/run installs it (cargo install cargo-deb --version 3.8.0 --locked)");
    }
    Ok(())
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(tool))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Runs `command`; its standard output, or an error with everything it said.
fn run(command: &mut Command) -> Result<String> {
    let shown = format!("{command:?}");
    let out = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn build_deb(stage: &Path, out: &Path, package: &str, revision: u32) -> Result<()> {
    run(Command::new(cargo())
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", stage)
        .args(["deb", "--quiet", "-p", package, "--no-build", "--fast"])
        .args(["--deb-revision", &revision.to_string(), "--output"])
        .arg(out))
    .map(drop)
}

/// `dpkg-deb --info` and `--contents` of one package.
fn inspect(deb: &Path, package: &str, version: &str, arch: &str) -> Result<()> {
    let field = |name: &str| -> Result<String> {
        Ok(
            run(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name))?
                .trim()
                .to_string(),
        )
    };
    assert_eq!(field("Package")?, package);
    assert_eq!(field("Version")?, version);
    assert_eq!(field("Architecture")?, arch);
    assert_eq!(field("Section")?, "net");
    let depends = field("Depends")?;
    assert!(
        depends.contains("adduser | systemd-sysusers") && depends.contains("libc6"),
        "{package} Depends: {depends}"
    );
    assert!(field("Maintainer")?.contains('@'));

    let info = run(Command::new("dpkg-deb").arg("--info").arg(deb))?;
    for member in ["control", "conffiles", "postinst", "prerm", "postrm"] {
        assert!(
            info.lines()
                .any(|l| l.contains(" bytes,") && l.split_whitespace().any(|t| t == member)),
            "{package}: no {member} in\n{info}"
        );
    }
    let member = |name: &str| run(Command::new("dpkg-deb").arg("--info").arg(deb).arg(name));
    let config = format!("/etc/outpost/{package}.toml");
    assert_eq!(
        member("conffiles")?.split_whitespace().collect::<Vec<_>>(),
        [config.as_str()]
    );
    let postinst = member("postinst")?;
    for needle in [
        "systemd-sysusers ${DPKG_ROOT:+--root=\"$DPKG_ROOT\"}",
        "adduser --system",
        "deb-systemd-invoke try-restart",
    ] {
        assert!(postinst.contains(needle), "{package} postinst: {needle}");
    }
    assert!(
        !postinst.contains("systemctl enable") && !postinst.contains("deb-systemd-invoke start"),
        "{package} postinst enables or starts its unit"
    );
    // Each script is valid shell.
    for script in ["postinst", "prerm", "postrm"] {
        let path = deb.with_extension(script);
        std::fs::write(&path, member(script)?)?;
        run(Command::new("sh").arg("-n").arg(&path))
            .with_context(|| format!("{package} {script} is not valid shell"))?;
    }

    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(deb))?;
    let entry = |path: &str| {
        contents
            .lines()
            .find(|l| l.ends_with(&format!(" .{path}")))
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
    };
    for (path, mode) in [
        (format!("/usr/bin/{package}"), "-rwxr-xr-x 0/0"),
        (config.clone(), "-rw-r----- 0/0"),
        (
            format!("/usr/lib/systemd/system/{package}.service"),
            "-rw-r--r-- 0/0",
        ),
        (
            format!("/usr/lib/sysusers.d/{package}.conf"),
            "-rw-r--r-- 0/0",
        ),
        (
            format!("/usr/share/doc/{package}/README.packaging.md"),
            "-rw-r--r-- 0/0",
        ),
    ] {
        assert_eq!(
            entry(&path).as_deref(),
            Some(mode),
            "{package}: {path} in\n{contents}"
        );
    }
    assert!(
        !contents.contains("./var/lib/outpost"),
        "{package} ships its state directory; upgrades would touch it"
    );
    Ok(())
}

/// An empty root dpkg can install into: its database, and `/etc/passwd`
/// and `/etc/group` holding root alone. For `systemd-analyze verify`, what
/// a Debian base system has that the units refer to: systemd's own units
/// (the targets) and `/bin/kill` (the agent's ExecReload).
fn make_root(root: &Path) -> Result<()> {
    for dir in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "etc",
        "usr/bin",
    ] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "")?;
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(root.join("etc/group"), "root:x:0:\n")?;
    std::os::unix::fs::symlink("usr/bin", root.join("bin"))?;
    std::fs::copy("/usr/bin/kill", root.join("usr/bin/kill"))
        .context("copying /usr/bin/kill (procps) into the throwaway root")?;
    let units = root.join("usr/lib/systemd/system");
    std::fs::create_dir_all(&units)?;
    for entry in std::fs::read_dir("/usr/lib/systemd/system")
        .context("reading systemd's units in /usr/lib/systemd/system")?
    {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), units.join(entry.file_name()))?;
        }
    }
    Ok(())
}

fn dpkg_cmd(root: &Path) -> Command {
    let mut command = Command::new("dpkg");
    command
        .arg(format!("--root={}", root.display()))
        .arg(format!("--log={}", root.join("dpkg.log").display()));
    command
}

/// dpkg in the throwaway root, maintainer scripts run with `DPKG_ROOT`.
fn dpkg(root: &Path, args: &[&str], debs: &[PathBuf]) -> Result<String> {
    run(dpkg_cmd(root)
        .args(["--force-script-chrootless", "--force-depends"])
        .args(args)
        .args(debs))
}

fn query(root: &Path, package: &str, format: &str) -> Result<String> {
    run(Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            root.join("var/lib/dpkg").display()
        ))
        .args(["-W", "-f", format, package]))
}

/// What postinst left: the user, the state directories, the config files'
/// owner and mode, no unit enabled. Returns the user's uid and gid.
fn installed_state(root: &Path) -> Result<(u32, u32)> {
    let passwd = std::fs::read_to_string(root.join("etc/passwd"))?;
    let user: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("outpost:"))
        .context("postinst created no user outpost")?
        .split(':')
        .collect();
    assert_eq!(
        user.get(5..),
        Some(&["/var/lib/outpost", "/usr/sbin/nologin"][..])
    );
    let uid: u32 = user.get(2).context("uid")?.parse()?;
    let gid: u32 = user.get(3).context("gid")?.parse()?;
    assert!(uid < 1000, "outpost is a system user: uid {uid}");
    let group = std::fs::read_to_string(root.join("etc/group"))?;
    assert!(
        group
            .lines()
            .any(|l| l.starts_with(&format!("outpost:x:{gid}:"))),
        "{group}"
    );
    for dir in [
        "var/lib/outpost",
        "var/lib/outpost/server",
        "var/lib/outpost/agent",
    ] {
        let m = std::fs::metadata(root.join(dir)).with_context(|| format!("/{dir}"))?;
        assert!(m.is_dir(), "/{dir}");
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (0o750, uid, gid),
            "/{dir}"
        );
    }
    for package in PACKAGES {
        let path = root.join(format!("etc/outpost/{package}.toml"));
        let m = std::fs::metadata(&path)?;
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (0o640, 0, gid),
            "{}",
            path.display()
        );
        // Known to deb-systemd-helper (so purge cleans up after an
        // enable), but not enabled.
        assert!(root
            .join(format!(
                "var/lib/systemd/deb-systemd-helper-enabled/{package}.service.dsh-also"
            ))
            .is_file());
        assert!(!root
            .join(format!(
                "etc/systemd/system/multi-user.target.wants/{package}.service"
            ))
            .exists());
    }
    Ok((uid, gid))
}

/// `systemd-analyze verify` accepts both installed units without a word,
/// `security --offline` rates them, and they say what the packaging
/// promises.
fn verify_units(root: &Path) -> Result<()> {
    let units = PACKAGES.map(|p| format!("{p}.service"));
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg("--man=no")
        .args(&units)
        .stdin(Stdio::null())
        .output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    for unit in &units {
        let out = run(Command::new("systemd-analyze")
            .args(["security", "--offline=yes"])
            .arg(format!("--root={}", root.display()))
            .arg(unit))?;
        let level = out
            .lines()
            .find_map(|l| l.split(&format!("exposure level for {unit}: ")).nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .with_context(|| format!("no exposure level for {unit}:\n{out}"))?;
        assert!(level <= 2.5, "{unit}: exposure {level}\n{out}");
    }

    let unit = |name: &str| {
        std::fs::read_to_string(root.join(format!("usr/lib/systemd/system/{name}.service")))
    };
    let server = unit("outpost-server")?;
    let agent = unit("outpost-agent")?;
    for (text, exec) in [
        (
            &server,
            "ExecStart=/usr/bin/outpost-server --config /etc/outpost/outpost-server.toml serve",
        ),
        (
            &agent,
            "ExecStart=/usr/bin/outpost-agent run --config /etc/outpost/outpost-agent.toml",
        ),
    ] {
        for line in [
            exec,
            "User=outpost",
            "Restart=on-failure",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "PrivateDevices=yes",
            "ProtectKernelTunables=yes",
            "ProtectKernelModules=yes",
            "ProtectKernelLogs=yes",
            "ProtectControlGroups=yes",
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
            "RestrictNamespaces=yes",
            "LockPersonality=yes",
            "MemoryDenyWriteExecute=yes",
            "SystemCallArchitectures=native",
            "StandardError=journal",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?}");
        }
    }
    assert!(server.lines().any(|l| l == "ProtectHome=yes"));
    assert!(server.lines().any(|l| l == "CapabilityBoundingSet="));
    assert!(!server.contains("CAP_"), "the server gets no capability");
    assert!(agent.lines().any(|l| l == "ProtectHome=read-only"));
    for line in [
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
    ] {
        assert!(agent.lines().any(|l| l == line), "agent: missing {line:?}");
    }
    Ok(())
}
