"""GraphQL Hive Gateway for the peer benchmark: installed from npm on demand, composed by Mesh from the
OpenAPI documents in bench/openapi/ over a running estate, served on loopback.

The packages go to a cache folder outside the repository (CUSTOMER_GRAPH_NPM_HIVE, default
~/.cache/customer-graph/npm-hive), pinned, installed once. Each run writes its Mesh and gateway configs into a
work folder whose node_modules links to that cache (so the configs' imports resolve), composes a supergraph
(the estate's ports are in it) and starts `hive-gateway supergraph` with one of the gateway configs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.harness import _wait_http, free_port_base

# Pinned: Hive Gateway as issue 14 measured it; Mesh compose and the OpenAPI loader current with it.
PACKAGES = {"@graphql-hive/gateway": "2.15.1", "@graphql-mesh/compose-cli": "1.8.2",
            "@omnigraph/openapi": "0.112.4", "graphql": "16.15.0"}
OPENAPI = Path(__file__).resolve().parent / "openapi"
RESPONSE_TTL_MS = 30_000  # Hive's response cache: the shortest record TTL of the work (interactions, 30 s)

MESH_CONFIG = """import {{ defineConfig }} from '@graphql-mesh/compose-cli';
import {{ loadOpenAPISubgraph }} from '@omnigraph/openapi';

// POST lookups are reads: Query fields, so that Hive's response cache (which skips mutations) applies.
export const composeConfig = defineConfig({{
  subgraphs: [
    {{ sourceHandler: loadOpenAPISubgraph('billing', {{
      source: {billing_doc}, endpoint: {billing_url}, operationHeaders: {{ 'X-Api-Key': {billing_key} }},
      selectQueryOrMutationField: [{{ type: 'Query', fieldName: 'lookupAccounts' }}] }}) }},
    {{ sourceHandler: loadOpenAPISubgraph('contact', {{
      source: {contact_doc}, endpoint: {contact_url},
      selectQueryOrMutationField: [{{ type: 'Query', fieldName: 'searchInteractions' }}] }}) }},
  ],
}});
"""

# Hive's own whole-response cache (the envelop/yoga response-cache plugin, in memory), one global session:
# the work carries no per-user data, as our side's agent role sees the same for every agent.
GATEWAY_CONFIG = "import {{ defineConfig }} from '@graphql-hive/gateway';\n\nexport const gatewayConfig = {};\n"
GATEWAY_CONFIGS = {
    "plain": GATEWAY_CONFIG.format("defineConfig({})"),
    "response cache": GATEWAY_CONFIG.format(
        f"defineConfig({{ responseCaching: {{ session: () => null, ttl: {RESPONSE_TTL_MS} }} }})"),
}


def npm_folder() -> Path:
    default = Path.home() / ".cache" / "customer-graph" / "npm-hive"
    return Path(os.environ.get("CUSTOMER_GRAPH_NPM_HIVE", default))


def _installed(folder: Path) -> bool:
    for name, version in PACKAGES.items():
        manifest = folder / "node_modules" / name / "package.json"
        if not manifest.exists() or json.loads(manifest.read_text()).get("version") != version:
            return False
    return True


def install() -> Path:
    """The npm folder with every pinned package in it, installing them on first use."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SystemExit("the peer benchmark needs node (20 or later) and npm on PATH")
    folder = npm_folder()
    if not _installed(folder):
        folder.mkdir(parents=True, exist_ok=True)
        specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
        print(f"installing {' '.join(specs)} into {folder} (once)", flush=True)
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder), *specs],
                              capture_output=True, text=True, check=False)
        if done.returncode or not _installed(folder):
            raise SystemExit(f"npm install failed in {folder}:\n{done.stderr[-2000:]}")
    return folder


def compose(npm: Path, work: Path, urls: dict[str, str], billing_key: str) -> Path:
    """The supergraph Mesh composes from the OpenAPI documents, pointed at the estate's billing and contact."""
    folder = work / "compose"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "node_modules").symlink_to(npm / "node_modules", target_is_directory=True)
    quoted = {k: json.dumps(v) for k, v in {
        "billing_doc": str(OPENAPI / "billing.json"), "contact_doc": str(OPENAPI / "contact.json"),
        "billing_url": urls["billing"], "contact_url": urls["contact"], "billing_key": billing_key}.items()}
    (folder / "mesh.config.ts").write_text(MESH_CONFIG.format(**quoted))
    out = folder / "supergraph.graphql"
    done = subprocess.run([str(npm / "node_modules" / ".bin" / "mesh-compose"), "--output", str(out)], cwd=folder,
                          capture_output=True, text=True, check=False)
    if done.returncode or not out.exists():
        raise SystemExit(f"mesh-compose failed:\n{(done.stdout + done.stderr)[-2000:]}")
    return out


@dataclass
class Hive:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start(npm: Path, work: Path, supergraph: Path, setup: str) -> Hive:
    """`hive-gateway supergraph` on a free loopback port with the named gateway config; waits until ready."""
    slug = setup.replace(" ", "-")
    folder = work / f"hive-{slug}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "node_modules").symlink_to(npm / "node_modules", target_is_directory=True)
    config = folder / "gateway.config.ts"
    config.write_text(GATEWAY_CONFIGS[setup])
    port = free_port_base(1) + 1
    log = work / f"hive-{slug}.log"
    # The bin script is `#!/usr/bin/env node`: exec'd directly, its pid is node's, whose CPU and RSS we read.
    proc = subprocess.Popen([str(npm / "node_modules" / ".bin" / "hive-gateway"), "supergraph", str(supergraph),
                             "--config-path", str(config), "--host", "127.0.0.1", "--port", str(port),
                             "--fork", "1", "--disable-websockets"],
                            cwd=folder, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, "NODE_ENV": "production"})
    hive = Hive(proc, port, log)
    try:
        _wait_http(hive.url + "/readiness", proc, f"Hive Gateway ({setup})")
    except RuntimeError as err:
        hive.stop()
        raise SystemExit(f"{err}:\n{log.read_text()[-2000:]}") from None
    return hive
