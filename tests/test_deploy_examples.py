"""The scheduling examples in ``examples/deploy/`` carry the right command and settings, and
work: each crontab line and systemd ``ExecStart`` is run for real against the demo store, with
the example's paths pointed at a scratch folder."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
import zoneinfo
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from fakes.webhook import WebhookFake

from segsync.core.errors import ConfigError
from segsync.core.settings import build_connectors, load_settings
from segsync.core.store import open_store, run_lock
from segsync.plugins import load_plugins

DEPLOY = REPO / "examples" / "deploy"
SEGSYNC = Path(sys.executable).with_name("segsync")
RUN = "/opt/segsync/bin/segsync run --config "


# -- crontab -----------------------------------------------------------------------------------

CRON_FIELDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def cron_field_ok(text: str, low: int, high: int) -> bool:
    """One crontab time field: ``*``, numbers, ranges, lists and ``/step``s within bounds."""
    for part in text.split(","):
        base, _, step = part.partition("/")
        if step and not (step.isdigit() and int(step) > 0):
            return False
        if base == "*":
            continue
        bounds = base.split("-")
        if len(bounds) > 2 or not all(b.isdigit() and low <= int(b) <= high for b in bounds):
            return False
    return True


def crontab(path: Path) -> tuple[dict[str, str], list[tuple[list[str], str]]]:
    """A crontab's variables and its jobs as (five time fields, command)."""
    env, jobs = {}, []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", line):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
            continue
        fields = line.split(None, 5)
        assert len(fields) == 6, line
        assert all(cron_field_ok(f, *b) for f, b in zip(fields[:5], CRON_FIELDS, strict=True)), line
        jobs.append((fields[:5], fields[5]))
    return env, jobs


def test_the_crontab_runs_nightly_on_segsyncs_own_lock_and_exit_codes():
    env, jobs = crontab(DEPLOY / "crontab")
    assert env["SHELL"] == "/bin/sh" and env["MAILTO"]
    (run_when, run), (check_when, check) = jobs
    assert run_when[2:] == ["*", "*", "*"] and run_when[:2] == ["17", "3"]  # nightly
    assert RUN + "/var/lib/segsync/segsync.toml" in run
    assert ". /etc/segsync/segsync.env" in run  # secrets from the environment
    assert "flock" not in run and "%" not in run  # "%" would end the command in cron
    assert "[ $rc -eq 0 ] || [ $rc -eq 3 ] || echo" in run  # 3 is quiet, 1 and 4 are mailed
    assert check.startswith("/opt/segsync/bin/segsync status --config /var/lib/segsync/"
                            "segsync.toml --fail-if-older-than 26h")


@pytest.fixture
def store(tmp_path):
    """A store folder as the examples expect one: the demo config with its exports."""
    def make(name: str) -> Path:
        folder = tmp_path / name
        shutil.copytree(REPO / "examples" / "exports", folder / "examples" / "exports")
        shutil.copy(REPO / "config.example.toml", folder / "segsync.toml")
        return folder
    return make


def as_here(command: str, store: Path, env_file: Path) -> str:
    """An example's command with its install paths pointed at this checkout and ``store``."""
    return (command.replace("/opt/segsync/bin/segsync", str(SEGSYNC))
            .replace("/etc/segsync/segsync.env", str(env_file))
            .replace("/var/lib/segsync", str(store)))


def cron(command: str, env: dict[str, str]) -> str:
    """Run a crontab command as cron does (``SHELL -c``, the crontab's PATH); return what cron
    would mail."""
    done = subprocess.run([env["SHELL"], "-c", command], capture_output=True, text=True,
                          env={**os.environ, "PATH": env["PATH"]}, timeout=120)
    return done.stdout + done.stderr


def test_the_crontab_lines_work(store, tmp_path):
    env, [(_, run), (_, check)] = crontab(DEPLOY / "crontab")
    folder = store("shop")
    secrets = tmp_path / "segsync.env"
    with WebhookFake(mode="json") as hook:
        secrets.write_text(f"SEGSYNC_ALERTS__WEBHOOK_URL={hook.url}\nSEGSYNC_ALERTS__FORMAT=json\n")
        run, check = as_here(run, folder, secrets), as_here(check, folder, secrets)

        assert cron(run, env) == ""  # a good night mails nothing
        assert "run 1 as of" in (folder / "last-run.log").read_text()
        with run_lock(folder / "segsync.db"):
            assert cron(run, env) == ""  # the previous run still going: not news
        assert "another segsync run holds the lock" in (folder / "last-run.log").read_text()
        secrets.write_text(secrets.read_text()
                           + "SEGSYNC_DESTINATIONS__FILES__FOLDER=segsync.toml/out\n")
        assert cron(run, env) == (f"segsync run exited 1; see {folder}/last-run.log and "
                                  "'segsync status'\n")
        # The secrets file reached segsync: the failure went to the webhook it names.
        assert [a["event"] for a in hook.accepted] == ["locked", "failed"]

    assert cron(check, env) == ""  # run 1 succeeded minutes ago
    db = open_store(folder / "segsync.db")
    db.execute("UPDATE runs SET finished_at = '2020-01-01T00:00:00Z'")
    db.close()
    assert cron(check, env).startswith("error: the last successful 'segsync run', run 1, ")


def test_many_stores_are_independent_staggered_jobs(store, tmp_path):
    env, jobs = crontab(DEPLOY / "many-stores" / "crontab")
    runs = [(when, cmd) for when, cmd in jobs if " run --config " in cmd]
    checks = [cmd for _, cmd in jobs if " status --config " in cmd]
    stores = [re.search(r"--config /var/lib/segsync/([\w-]+)/segsync.toml", c)[1]
              for _, c in runs]
    assert len(stores) >= 2 and len(set(stores)) == len(stores)
    assert len({tuple(when[:2]) for when, _ in runs}) == len(runs)  # staggered start times
    for name, (_, cmd) in zip(stores, runs, strict=True):
        assert f"cd /var/lib/segsync/{name} " in cmd and f". /etc/segsync/{name}.env " in cmd
        assert "[ $rc -eq 3 ]" in cmd and "flock" not in cmd and "%" not in cmd
        assert any(f"/var/lib/segsync/{name}/segsync.toml --fail-if-older-than" in c
                   for c in checks)

    # Two stores at the same moment: each has its own database and lock, so both run.
    root = tmp_path / "stores"
    procs = []
    for name, (_, cmd) in zip(stores, runs, strict=True):
        folder = store(f"stores/{name}")
        (tmp_path / f"{name}.env").write_text("")
        command = (cmd.replace("/opt/segsync/bin/segsync", str(SEGSYNC))
                   .replace("/etc/segsync", str(tmp_path)).replace("/var/lib/segsync",
                                                                    str(root)))
        procs.append((folder, subprocess.Popen([env["SHELL"], "-c", command], text=True,
                                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                               env={**os.environ, "PATH": env["PATH"]})))
    for folder, proc in procs:
        assert proc.communicate(timeout=120)[0] == ""
        assert "run 1 as of" in (folder / "last-run.log").read_text()


# -- systemd -----------------------------------------------------------------------------------

def unit(path: Path, instance: str | None = None) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd keys are case-sensitive
    text = path.read_text()
    parser.read_string(text.replace("%i", instance) if instance else text, str(path))
    return parser


def env_file(path: Path) -> dict[str, str]:
    """KEY=value lines as systemd's EnvironmentFile= reads them (comments and blanks skipped)."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep and key == key.strip() and value == value.strip(), line
            assert not re.search(r"[\"'$#\s]", value), line
            pairs[key] = value
    return pairs


@pytest.mark.parametrize(("service", "instance"), [("systemd/segsync.service", None),
                                                   ("many-stores/segsync@.service",
                                                    "marginalia")])
def test_the_systemd_service_runs_segsync_once_as_its_own_user(service, instance):
    svc = unit(DEPLOY / service, instance)["Service"]
    state = "/var/lib/" + svc["StateDirectory"]
    assert svc["Type"] == "oneshot" and svc["User"] == "segsync"
    assert svc["WorkingDirectory"] == state
    assert shlex.split(svc["ExecStart"]) == ["/opt/segsync/bin/segsync", "run", "--config",
                                             f"{state}/segsync.toml"]
    assert svc["EnvironmentFile"] == f"/etc/segsync/{instance or 'segsync'}.env"
    assert svc["SuccessExitStatus"] == "3"  # the lock was taken by a run doing the work
    assert svc["TimeoutStartSec"] and svc["ProtectSystem"] == "strict"
    assert svc["UMask"] == "0077" and svc["StateDirectoryMode"] == "0700"


@pytest.mark.parametrize("timer", ["systemd/segsync.timer", "many-stores/segsync@.timer"])
def test_the_systemd_timer_fires_nightly_and_catches_up(timer):
    parsed = unit(DEPLOY / timer)
    when = parsed["Timer"]["OnCalendar"].split()
    assert when[0] == "*-*-*" and re.fullmatch(r"\d\d:\d\d:00", when[1])
    zoneinfo.ZoneInfo(when[2])
    assert parsed["Timer"]["Persistent"] == "true"
    assert parsed["Install"]["WantedBy"] == "timers.target"
    if "@" in timer:  # one fixed moment per store, spread over the window
        assert parsed["Timer"]["FixedRandomDelay"] == "yes"


def systemd_run(service: Path, instance: str | None, state: Path, etc: Path) -> int:
    """Run a unit's ExecStart as systemd would: no shell, its EnvironmentFile, its folder."""
    svc = unit(service, instance)["Service"]

    def here(value: str) -> str:
        return (value.replace("/opt/segsync/bin/segsync", str(SEGSYNC))
                .replace("/var/lib/", f"{state}/").replace("/etc/segsync", str(etc)))

    env = {**os.environ, **env_file(Path(here(svc["EnvironmentFile"])))}
    return subprocess.run(shlex.split(here(svc["ExecStart"])), cwd=here(svc["WorkingDirectory"]),
                          env=env, capture_output=True, timeout=120).returncode


def test_the_systemd_units_work(store, tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("segsync", "marginalia", "harbour-tea"):
        (etc / f"{name}.env").write_text("SEGSYNC_ALERTS__LABEL=from-the-env-file\n")
    store("state/segsync")
    assert systemd_run(DEPLOY / "systemd/segsync.service", None, tmp_path / "state", etc) == 0
    for instance in ("marginalia", "harbour-tea"):
        store(f"state/segsync/{instance}")
        assert systemd_run(DEPLOY / "many-stores/segsync@.service", instance,
                           tmp_path / "state", etc) == 0
        assert (tmp_path / "state/segsync" / instance / "segsync.db").exists()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_every_unit_without_a_warning(tmp_path):
    for folder, names in (("systemd", ["segsync.service", "segsync.timer"]),
                          ("many-stores", ["segsync@.service", "segsync@.timer"])):
        for name in names:
            text = (DEPLOY / folder / name).read_text()
            (tmp_path / name).write_text(text.replace("/opt/segsync/bin/segsync", str(SEGSYNC)))
        files = [tmp_path / n.replace("@.", "@marginalia.") for n in names]
        for name, file in zip(names, files, strict=True):
            if "@" in name:
                file.symlink_to(tmp_path / name)
        done = subprocess.run(["systemd-analyze", "verify", *map(str, files)],
                              capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stderr) == (0, ""), done.stderr


# -- Kubernetes --------------------------------------------------------------------------------

K8S = DEPLOY / "kubernetes"


def manifests() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all((K8S / "segsync.yaml").read_text())}


def test_the_cronjob_runs_one_segsync_at_a_time_on_a_persistent_volume():
    docs, kustomization = manifests(), yaml.safe_load((K8S / "kustomization.yaml").read_text())
    cronjob, pvc = docs["CronJob"], docs["PersistentVolumeClaim"]
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    fields = spec["schedule"].split()
    assert all(cron_field_ok(f, *b) for f, b in zip(fields, CRON_FIELDS, strict=True))
    zoneinfo.ZoneInfo(spec["timeZone"])
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] > 0
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["securityContext"]["runAsNonRoot"]
    [container] = pod["containers"]
    assert container["command"] + container["args"] == ["segsync", "run", "--config",
                                                        "/etc/segsync/segsync.toml"]
    assert "env" not in container  # no value written into the manifest
    [secret_ref] = container["envFrom"]
    [secrets] = kustomization["secretGenerator"]
    assert secret_ref["secretRef"]["name"] == secrets["name"]
    assert secrets["envs"] == ["segsync.env"]

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] | {"readOnly": m.get("readOnly", False)}
              for m in container["volumeMounts"]}
    [config_map] = kustomization["configMapGenerator"]
    assert mounts["/etc/segsync"]["configMap"]["name"] == config_map["name"]
    assert mounts["/etc/segsync"]["readOnly"] and config_map["files"] == ["segsync.toml"]
    data = mounts["/var/lib/segsync"]
    assert data["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "emptyDir" in mounts["/tmp"]
    assert kustomization["resources"] == ["segsync.yaml"]


def test_the_cronjobs_config_writes_only_to_the_volume_and_takes_secrets_from_the_secret(
        monkeypatch):
    with pytest.raises(ConfigError, match="access_token: Field required"):  # none in the file
        build_connectors(load_settings(K8S / "segsync.toml"), load_plugins())
    secrets = env_file(DEPLOY / "segsync.env.example")
    assert secrets and all(key.startswith("SEGSYNC_") for key in secrets)
    for key, value in secrets.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(K8S / "segsync.toml")
    sources, destinations = build_connectors(settings, load_plugins())
    assert set(sources) == {"shop"} and set(destinations) == {"mailchimp", "klaviyo"}
    assert settings.alerts.webhook_url is not None
    volume = Path("/var/lib/segsync")
    assert settings.store.path.parent == volume
    assert destinations["klaviyo"].config.state_dir == volume


def test_the_secrets_file_reads_the_same_in_a_shell_as_in_systemd(tmp_path):
    done = subprocess.run(["/bin/sh", "-c", f"set -a; . {DEPLOY / 'segsync.env.example'}; env"],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"},
                          check=True)
    shell = dict(line.split("=", 1) for line in done.stdout.splitlines()
                 if line.startswith("SEGSYNC_"))
    assert shell == env_file(DEPLOY / "segsync.env.example")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl (kustomize)")
def test_kustomize_points_the_cronjob_at_the_generated_config_and_secret(tmp_path):
    shutil.copytree(K8S, tmp_path / "k8s")
    shutil.copy(DEPLOY / "segsync.env.example", tmp_path / "k8s" / "segsync.env")
    done = subprocess.run(["kubectl", "kustomize", str(tmp_path / "k8s")], capture_output=True,
                          text=True, timeout=60, check=True)
    docs = {d["kind"]: d for d in yaml.safe_load_all(done.stdout)}
    pod = docs["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    assert (pod["containers"][0]["envFrom"][0]["secretRef"]["name"]
            == docs["Secret"]["metadata"]["name"])
    assert set(docs["Secret"]["data"]) == set(env_file(DEPLOY / "segsync.env.example"))


def test_the_image_holds_the_package_and_runs_as_the_cronjobs_user():
    text = (K8S / "Dockerfile").read_text()
    pyproject = (REPO / "pyproject.toml").read_text()
    for folder in re.findall(r'"segsync\.\w+" = "(\w+)"', pyproject):
        assert f"COPY {folder} /src/{folder}" in text, folder
    user = manifests()["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "securityContext"]["runAsUser"]
    assert f"USER {user}:" in text and 'ENTRYPOINT ["segsync"]' in text
    assert "COPY . " not in text  # never a local database or secrets file


def test_the_readme_walks_through_every_example():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Running on a schedule", 1)[1].split("\n## ", 1)[0]
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        assert str(path.relative_to(REPO)) in section, path
