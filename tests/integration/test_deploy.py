"""deploy/: what operators install, checked where it can run on this machine.

- systemd units: `systemd-analyze verify` on an image root holding the
  installed binaries (cmake --install into a temp prefix), plus the settings
  the issue asks for (restart, SIGTERM, stop timeout above the grace,
  sandboxing, the timer's schedule).
- the example environment file is valid configuration (exit 69 for an
  unreachable Redis, not 78) and holds no real secret.
- every YAML file under deploy/ parses (python3-yaml), and a small checker
  walks the Kubernetes manifests and the compose file for the fields that
  matter (probes, grace, resources, Secret, CronJob, KEDA, scraping).
- deploy/redis.conf loads in a real redis-server with the settings it claims.
- the Dockerfile, statically: no Docker engine runs here (`docker` is only a
  client), so nothing is built; the runtime stage's package set is checked
  against the shared libraries the built programs really load.

Needs python3-yaml (Debian; deploy/install-deps.sh test); ctest runs it with
Debian's /usr/bin/python3."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import unittest

import yaml

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN_DIR, RespClient, TempDir, binpath, free_port, spawn, wait_until  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
FINAL_WRITE_WAIT_S = 3   # worker.c: after the grace, time for the last writes


def read_env_file(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                k, v = line.split("=", 1)
                env[k] = v
    return env


GRACE_S = int(read_env_file(os.path.join(DEPLOY, "adsync.env.example"))["ADSYNC_SHUTDOWN_GRACE_MS"]) / 1000


def parse_unit(path):
    """{section: {key: [values...]}}; systemd allows repeated keys."""
    out, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = out.setdefault(line.strip("[]"), {})
                continue
            k, v = line.split("=", 1)
            section.setdefault(k.strip(), []).append(v.strip())
    return out


def seconds(text):
    m = re.fullmatch(r"(\d+)(s|min)?", text)
    assert m, text
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


def load_yaml_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


class SystemdTest(unittest.TestCase):
    units = ("adsync-worker@.service", "adsync-enqueue.service", "adsync-enqueue.timer", "adsync-console.service")

    def unit(self, name):
        return parse_unit(os.path.join(DEPLOY, "systemd", name))

    def test_worker_unit_settings(self):
        svc = self.unit("adsync-worker@.service")["Service"]
        one = {k: v[-1] for k, v in svc.items()}
        self.assertEqual(one["Restart"], "on-failure")
        self.assertEqual(one["KillSignal"], "SIGTERM")
        self.assertGreater(seconds(one["TimeoutStopSec"]), GRACE_S + FINAL_WRITE_WAIT_S)
        for k, v in {"DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
                     "ProtectHome": "yes", "PrivateTmp": "yes"}.items():
            self.assertEqual(one.get(k), v, k)
        self.assertIn("/etc/adsync/adsync.env", svc["EnvironmentFile"])
        self.assertIn("-/etc/adsync/worker.env", svc["EnvironmentFile"])
        self.assertEqual(one["LoadCredential"], "adsync-secret-key:/etc/adsync/secret.key")
        self.assertTrue(one["ExecStart"].startswith("/usr/local/bin/adsync-worker --id "), one["ExecStart"])
        self.assertIn("78", one["RestartPreventExitStatus"].split())

    def test_enqueue_service_and_timer(self):
        svc = {k: v[-1] for k, v in self.unit("adsync-enqueue.service")["Service"].items()}
        self.assertEqual(svc["Type"], "oneshot")
        self.assertEqual(svc["ExecStart"], "/usr/local/bin/adsync-enqueue sync --all")
        self.assertEqual(svc["DynamicUser"], "yes")
        self.assertEqual(svc["LoadCredential"], "adsync-secret-key:/etc/adsync/secret.key")
        self.assertEqual(svc["EnvironmentFile"], "-/etc/adsync/enqueue.env")
        timer = self.unit("adsync-enqueue.timer")
        self.assertEqual(timer["Timer"]["Unit"], ["adsync-enqueue.service"])
        self.assertEqual(timer["Install"]["WantedBy"], ["timers.target"])
        if shutil.which("systemd-analyze"):
            for spec in timer["Timer"]["OnCalendar"]:
                r = subprocess.run(["systemd-analyze", "calendar", spec], capture_output=True, text=True)
                self.assertEqual(r.returncode, 0, r.stderr)

    def test_console_unit(self):
        svc = {k: v[-1] for k, v in self.unit("adsync-console.service")["Service"].items()}
        self.assertEqual(svc["ExecStart"], "/usr/local/bin/adsync-enqueue web --listen 127.0.0.1:8080")
        self.assertEqual(svc["EnvironmentFile"], "-/etc/adsync/console.env")
        self.assertEqual(svc["DynamicUser"], "yes")
        self.assertIn("78", svc["RestartPreventExitStatus"].split())

    def _image_root(self, tmp):
        """A root with the system's unit library, our units, the installed
        binaries (where the units say) and an environment file."""
        build = os.path.dirname(os.path.abspath(BIN_DIR))
        r = subprocess.run(["cmake", "--install", build, "--prefix", os.path.join(tmp, "usr", "local")],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for prog in ("adsync-worker", "adsync-enqueue"):
            self.assertTrue(os.access(os.path.join(tmp, "usr/local/bin", prog), os.X_OK), prog)
        os.makedirs(os.path.join(tmp, "usr/lib/systemd"))
        shutil.copytree("/usr/lib/systemd/system", os.path.join(tmp, "usr/lib/systemd/system"), symlinks=True)
        units = os.path.join(tmp, "etc/systemd/system")
        os.makedirs(units)
        for u in self.units:
            shutil.copy(os.path.join(DEPLOY, "systemd", u), units)
        os.makedirs(os.path.join(tmp, "etc/adsync"))
        shutil.copy(os.path.join(DEPLOY, "adsync.env.example"), os.path.join(tmp, "etc/adsync/adsync.env"))
        return units

    def _verify(self, root, *units):
        return subprocess.run(["systemd-analyze", f"--root={root}", "verify"] + list(units),
                              capture_output=True, text=True)

    @unittest.skipUnless(shutil.which("systemd-analyze") and os.path.isdir("/usr/lib/systemd/system"),
                         "systemd-analyze is not installed (deploy/install-deps.sh test installs it)")
    def test_systemd_analyze_verify_with_binaries_installed(self):
        tmp = TempDir("units")
        try:
            units = self._image_root(tmp.path)
            r = self._verify(tmp.path, "adsync-worker@9101.service", "adsync-enqueue.service",
                             "adsync-enqueue.timer", "adsync-console.service")
            self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))
            # The check is real: a typo and a missing binary are both caught.
            with open(os.path.join(units, "adsync-enqueue.service"), "a") as f:
                f.write("Restrat=on-failure\n")
            os.remove(os.path.join(tmp.path, "usr/local/bin/adsync-worker"))
            r = self._verify(tmp.path, "adsync-enqueue.service")
            self.assertIn("Unknown key 'Restrat'", r.stderr)
            r = self._verify(tmp.path, "adsync-worker@9101.service")
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("adsync-worker is not executable", r.stderr)
        finally:
            tmp.cleanup()


class EnvFileTest(unittest.TestCase):
    def test_example_env_is_valid_config_without_secrets(self):
        path = os.path.join(DEPLOY, "adsync.env.example")
        env = read_env_file(path)
        self.assertIn("REDIS_URL", env)
        self.assertIn("CHANGE-ME", env["REDIS_URL"])
        with open(path) as f:
            text = f.read()
        self.assertNotRegex(text, r"(?i)secret-client_|password=\S")
        # Loaded as is (but with a Redis nobody listens on), every value
        # passes validation: exit 69 "Redis unavailable", not 78.
        env["REDIS_URL"] = f"redis://:CHANGE-ME@127.0.0.1:{free_port()}/0"
        full = {k: v for k, v in os.environ.items() if not k.startswith(("ADSYNC_", "REDIS_", "AD_"))}
        full.update(env)
        r = subprocess.run([binpath("adsync-enqueue"), "status"], env=full, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 69, r.stderr)
        self.assertNotIn("CHANGE-ME", r.stderr)


class YamlTest(unittest.TestCase):
    def setUp(self):
        self.docs = {}
        for path in glob.glob(os.path.join(DEPLOY, "**", "*.y*ml"), recursive=True):
            self.docs[os.path.relpath(path, DEPLOY)] = load_yaml_docs(path)

    def k8s(self, kind, name=None):
        found = [d for f, docs in self.docs.items() if f.startswith("k8s/")
                 for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]
        self.assertTrue(found, f"no {kind} {name or ''} under deploy/k8s")
        return found[0]

    def test_k8s_worker_memory_limit_is_derived_from_its_settings(self):
        """README "Memory": the limit covers the bound its ConfigMap's
        settings give, without more than a quarter of slack."""
        import workerlib as wl
        dep = self.k8s("Deployment", "adsync-worker")
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        data = {}
        for cm in (e["configMapRef"]["name"] for e in c["envFrom"] if "configMapRef" in e):
            data.update(self.k8s("ConfigMap", cm)["data"])
        defaults = dict(ADSYNC_CONCURRENCY=256, ADSYNC_MAX_JOBS=1024, ADSYNC_MAX_BODY_BYTES=8 << 20,
                        ADSYNC_BODY_BUDGET_BYTES=64 << 20)
        settings = {k: int(data.get(k, v)) for k, v in defaults.items()}
        bound = wl.readme_memory_bound_mb(settings)
        limit = c["resources"]["limits"]["memory"]
        self.assertTrue(limit.endswith("Mi"), limit)
        self.assertGreaterEqual(int(limit[:-2]), bound)
        self.assertLessEqual(int(limit[:-2]), bound * 1.25)

    def test_every_yaml_file_parses(self):
        for rel in ("compose.yaml", "k8s/worker-deployment.yaml", "k8s/cronjob.yaml",
                    "k8s/keda-scaledobject.yaml", "prometheus/alerts.yml"):
            self.assertIn(rel, self.docs)
        for rel, docs in self.docs.items():
            self.assertTrue(docs, f"{rel} is empty")

    def test_k8s_worker_deployment(self):
        dep = self.k8s("Deployment", "adsync-worker")
        pod = dep["spec"]["template"]["spec"]
        self.assertGreater(pod["terminationGracePeriodSeconds"], GRACE_S + FINAL_WRITE_WAIT_S)
        self.assertEqual(dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0)
        labels = dep["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(dep["spec"]["selector"]["matchLabels"], labels)
        (c,) = pod["containers"]
        self.assertEqual(c["command"], ["adsync-worker"])
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        self.assertEqual(env["ADSYNC_METRICS_ADDR"], f"0.0.0.0:{ports['metrics']}")
        for probe in ("livenessProbe", "readinessProbe"):
            get = c[probe]["httpGet"]
            self.assertEqual(get["path"], "/healthz", probe)
            self.assertIn(get["port"], ("metrics", ports["metrics"]), probe)
        for part in ("requests", "limits"):
            self.assertTrue({"cpu", "memory"} <= set(c["resources"][part]), part)
        secret_refs = [e["secretRef"]["name"] for e in c["envFrom"] if "secretRef" in e]
        self.assertEqual(len(secret_refs), 1)
        secret = self.k8s("Secret", secret_refs[0])
        self.assertIn("REDIS_URL", secret["stringData"])
        self.assertNotIn("REDIS_URL", env, "credentials come from the Secret")
        for cm in (e["configMapRef"]["name"] for e in c["envFrom"] if "configMapRef" in e):
            data = self.k8s("ConfigMap", cm)["data"]
            self.assertFalse([k for k in data if "URL" in k and "@" in data[k]], "no credentials in a ConfigMap")
            if "ADSYNC_SHUTDOWN_GRACE_MS" in data:
                self.assertGreater(pod["terminationGracePeriodSeconds"],
                                   int(data["ADSYNC_SHUTDOWN_GRACE_MS"]) / 1000 + FINAL_WRITE_WAIT_S)
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertFalse(c["securityContext"]["allowPrivilegeEscalation"])

    def test_k8s_pods_get_the_sealing_key_and_their_own_redis_user(self):
        """Worker and scheduler pods copy the key Secret into a 0400 file they
        own and point ADSYNC_SECRET_KEY_FILE at it; each uses its role's
        REDIS_URL."""
        dep = self.k8s("Deployment", "adsync-worker")["spec"]["template"]["spec"]
        cj = self.k8s("CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        users = {}
        for pod in (dep, cj):
            (init,) = pod["initContainers"]
            self.assertEqual(init["command"][:3], ["install", "-m", "0400"])
            volumes = {v["name"]: v for v in pod["volumes"]}
            self.assertEqual(volumes["secret-key"]["emptyDir"]["medium"], "Memory")
            self.assertEqual(volumes["secret-key-source"]["secret"]["secretName"], "adsync-secret-key")
            (c,) = pod["containers"]
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            mount = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}["secret-key"]
            self.assertEqual(env["ADSYNC_SECRET_KEY_FILE"], init["command"][-1])
            self.assertTrue(env["ADSYNC_SECRET_KEY_FILE"].startswith(mount + "/"))
            (ref,) = [e["secretRef"]["name"] for e in c["envFrom"] if "secretRef" in e]
            users[c["name"]] = self.k8s("Secret", ref)["stringData"]["REDIS_URL"].split("//")[1].split(":")[0]
        self.assertEqual(users, {"worker": "adsync-worker", "enqueue": "adsync-enqueue"})

    def test_k8s_console_off_by_default_and_never_exposed(self):
        dep = self.k8s("Deployment", "adsync-console")
        self.assertEqual(dep["spec"]["replicas"], 0)
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        self.assertEqual(c["command"], ["adsync-enqueue", "web", "--listen", "127.0.0.1:8080"])
        self.assertFalse([d for docs in self.docs.values() for d in docs if d.get("kind") in ("Service", "Ingress")
                          and d["spec"].get("selector", {}).get("app.kubernetes.io/component") == "console"])
        (ref,) = [e["secretRef"]["name"] for e in c["envFrom"] if "secretRef" in e]
        self.assertIn("adsync-console:", self.k8s("Secret", ref)["stringData"]["REDIS_URL"])
        with open(os.path.join(DEPLOY, "k8s", "kustomization.yaml")) as f:
            self.assertIn("console-deployment.yaml", yaml.safe_load(f)["resources"])

    def test_k8s_scraping(self):
        dep = self.k8s("Deployment", "adsync-worker")
        labels = dep["spec"]["template"]["metadata"]["labels"]
        ann = dep["spec"]["template"]["metadata"].get("annotations", {})
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        metrics_port = {p["name"]: p["containerPort"] for p in c["ports"]}["metrics"]
        self.assertEqual(ann.get("prometheus.io/scrape"), "true")
        self.assertEqual(int(ann["prometheus.io/port"]), metrics_port)
        sm = self.k8s("ServiceMonitor", "adsync-worker")
        services = [d for docs in self.docs.values() for d in docs if d.get("kind") == "Service"]
        svc = [s for s in services
               if all(s["metadata"].get("labels", {}).get(k) == v
                      for k, v in sm["spec"]["selector"]["matchLabels"].items())]
        self.assertEqual(len(svc), 1, "the ServiceMonitor selects exactly one Service")
        selected = svc[0]["spec"]["selector"]
        self.assertTrue(all(labels.get(k) == v for k, v in selected.items()), "the Service selects the workers")
        port_names = [p["name"] for p in svc[0]["spec"]["ports"]]
        self.assertIn(sm["spec"]["endpoints"][0]["port"], port_names)
        self.assertEqual(sm["spec"]["endpoints"][0]["path"], "/metrics")

    def test_k8s_cronjob(self):
        cj = self.k8s("CronJob")
        self.assertEqual(len(cj["spec"]["schedule"].split()), 5)
        self.assertEqual(cj["spec"]["concurrencyPolicy"], "Forbid")
        (c,) = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        self.assertEqual(" ".join(c.get("command", []) + c.get("args", [])), "adsync-enqueue sync --all")
        self.assertTrue(any("secretRef" in e for e in c["envFrom"]))

    def test_k8s_keda(self):
        so = self.k8s("ScaledObject")
        self.assertEqual(so["spec"]["scaleTargetRef"]["name"], "adsync-worker")
        self.assertGreaterEqual(so["spec"]["minReplicaCount"], 1, "the floor that keeps retries moving")
        redis = [t for t in so["spec"]["triggers"] if t["type"] == "redis"]
        self.assertEqual(len(redis), 1)
        self.assertEqual(redis[0]["metadata"]["listName"], "adsync:jobs")
        auth = self.k8s("TriggerAuthentication", redis[0]["authenticationRef"]["name"])
        refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
        for ref in refs.values():
            self.assertIn(ref["key"], self.k8s("Secret", ref["name"])["stringData"])
        user = refs["username"]
        self.assertEqual(self.k8s("Secret", user["name"])["stringData"][user["key"]], "adsync-autoscaler",
                         "KEDA logs in as the autoscaler ACL user")
        with open(os.path.join(ROOT, "README.md")) as f:
            readme = f.read()
        self.assertIn("## Operations", readme)
        self.assertRegex(readme, r"(?s)KEDA.*retry.*(floor|minReplicaCount)")

    def test_compose(self):
        (c,) = self.docs["compose.yaml"]
        s = c["services"]
        self.assertTrue({"redis", "mock-api", "worker", "scheduler"} <= set(s))
        redis = s["redis"]
        self.assertIn("./redis.conf:/usr/local/etc/redis/redis.conf:ro", redis["volumes"])
        data_vol = [v.split(":")[0] for v in redis["volumes"] if v.endswith(":/data")]
        self.assertEqual(len(data_vol), 1)
        self.assertIn(data_vol[0], c["volumes"])
        self.assertIn("/usr/local/etc/redis/redis.conf", redis["command"])
        self.assertIn("--aclfile /run/secrets/redis-users.acl", redis["command"])
        self.assertNotIn("requirepass", redis["command"], "no shared password to fall back to")
        self.assertNotIn("change-me", json.dumps(c).lower())
        w = s["worker"]
        self.assertEqual(w["env_file"], [".secrets/adsync-worker.env"])
        self.assertEqual(s["scheduler"]["env_file"], [".secrets/adsync-enqueue.env"])
        self.assertEqual(w["environment"]["ADSYNC_SECRET_KEY_FILE"], "/run/secrets/adsync-secret-key")
        self.assertEqual(c["secrets"]["adsync-secret-key"]["file"], "./.secrets/secret.key")
        self.assertGreaterEqual(w["deploy"]["replicas"], 2)
        self.assertEqual(w["environment"]["ADSYNC_METRICS_ADDR"], "0.0.0.0:9100")
        self.assertIn("9100", [str(p) for p in w["ports"]])
        self.assertGreater(seconds(w["stop_grace_period"]),
                           int(w["environment"]["ADSYNC_SHUTDOWN_GRACE_MS"]) / 1000 + FINAL_WRITE_WAIT_S)
        self.assertIn("adsync-enqueue sync --all", "".join(s["scheduler"]["command"]))
        for name in ("worker", "scheduler", "mock-api"):
            self.assertEqual(s[name]["build"]["dockerfile"], "deploy/Dockerfile", name)
            self.assertEqual(s[name]["image"], "adsync:latest", name)
        for v in (v for svc in s.values() for v in svc.get("volumes", []) if v.startswith("./")):
            self.assertTrue(os.path.exists(os.path.join(DEPLOY, v.split(":")[0])), v)


class RedisConfTest(unittest.TestCase):
    def test_redis_conf_loads_with_what_it_claims(self):
        conf = os.path.join(DEPLOY, "redis.conf")
        with open(conf) as f:
            text = f.read()
        for needle in ("requirepass", "ACL", "maxmemory"):
            self.assertIn(needle, text, "comment on auth and sizing")
        tmp = TempDir("redisconf")
        port = free_port()
        p = spawn(["redis-server", conf, "--port", str(port), "--dir", tmp.path, "--daemonize", "no",
                   "--logfile", ""], stdout=subprocess.DEVNULL)
        try:
            def ping():
                try:
                    c = RespClient(port, timeout=1)
                    try:
                        return c.cmd("PING") == "PONG"
                    finally:
                        c.close()
                except OSError:
                    return False
            wait_until(ping, 10, "redis-server with deploy/redis.conf")
            c = RespClient(port)
            got = {k: c.cmd("CONFIG", "GET", k)[1] for k in
                   ("appendonly", "appendfsync", "maxmemory-policy", "bind", "protected-mode")}
            self.assertEqual(got["appendonly"], "yes")
            self.assertEqual(got["appendfsync"], "everysec")
            self.assertEqual(got["maxmemory-policy"], "noeviction")
            self.assertEqual(got["bind"].split()[0], "127.0.0.1")
            self.assertNotIn("0.0.0.0", got["bind"])
            self.assertEqual(got["protected-mode"], "yes")
            c.close()
        finally:
            p.terminate()
            p.wait(timeout=20)
            tmp.cleanup()


class DockerfileTest(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(DEPLOY, "Dockerfile")) as f:
            self.lines = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]

    def libs_set(self):
        with open(os.path.join(DEPLOY, "install-deps.sh")) as f:
            m = re.search(r"^libs_pkgs=\(([^)]*)\)", f.read(), re.M)
        self.assertIsNotNone(m, "install-deps.sh has a libs set")
        return set(m.group(1).split())

    def test_dockerfile_static_checks_no_docker_engine_here(self):
        """Only static: no Docker engine runs on this machine, nothing is built."""
        froms = [ln.split()[1:] for ln in self.lines if ln.startswith("FROM ")]
        self.assertEqual(froms, [["debian:bookworm", "AS", "build"], ["debian:bookworm-slim"]])
        text = "\n".join(self.lines)
        build, runtime = text.split("FROM debian:bookworm-slim")
        self.assertIn("install-deps.sh build", build)
        self.assertIn("install-deps.sh libs", runtime)
        self.assertNotRegex(runtime, r"-dev\b|build-essential|cmake -S")
        self.assertIn("COPY --from=build", runtime)
        user = [ln.split()[1] for ln in self.lines if ln.startswith("USER ")]
        self.assertEqual(len(user), 1)
        self.assertNotIn(user[0].split(":")[0], ("0", "root"))
        self.assertTrue(os.path.exists(os.path.join(DEPLOY, "Dockerfile.dockerignore")))

    @unittest.skipUnless(shutil.which("readelf") and shutil.which("dpkg"), "needs readelf and dpkg")
    def test_runtime_stage_has_every_library_the_programs_load(self):
        allowed = self.libs_set() | {"libc6", "libgcc-s1"}   # libc6 & co. are in bookworm-slim
        sanitizer = {"libasan8", "libubsan1"}                 # only in a -DADSYNC_SANITIZE=ON build
        for prog in ("adsync-worker", "adsync-enqueue", "adsync-mock-api"):
            path = binpath(prog)
            needed = re.findall(r"\(NEEDED\).*\[(.+)\]", subprocess.run(
                ["readelf", "-d", path], capture_output=True, text=True, check=True).stdout)
            paths = dict(re.findall(r"^\s*(\S+) => (\S+)", subprocess.run(
                ["ldd", path], capture_output=True, text=True, check=True).stdout, re.M))
            for lib in needed:
                pkg = self.package_of(paths[lib])
                if pkg not in sanitizer:
                    self.assertIn(pkg, allowed, f"{prog} needs {lib} from {pkg}")

    def package_of(self, path):
        real = os.path.realpath(path)
        for candidate in (path, real, real.replace("/usr/lib/", "/lib/", 1)):
            r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
            if r.returncode == 0:
                return r.stdout.split(":")[0]
        self.fail(f"no Debian package owns {path}")


if __name__ == "__main__":
    unittest.main()
