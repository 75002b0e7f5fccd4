#!/usr/bin/env bash
# Static checks of the deployment files (no Docker engine or cluster needed):
# YAML and JSON parse, compose structure, kustomization references, kustomize
# builds (with kubectl) and NATS configs (with nats-server). Tools that are
# missing are skipped, not failed.   Usage: bash deploy/check.sh
set -u
cd "$(dirname "$0")/.."
fail=0
ok() { echo "ok    $*"; }
bad() { echo "FAIL  $*"; fail=1; }
skip() { echo "skip  $*"; }

echo "== YAML"
for f in docker-compose.yml $(find deploy k8s \( -name '*.yml' -o -name '*.yaml' \) | sort); do
  python3 -c 'import yaml,sys; list(yaml.safe_load_all(open(sys.argv[1])))' "$f" && ok "$f" || bad "$f"
done

echo "== JSON"
for f in $(find deploy k8s -name '*.json' | sort); do
  node -e 'JSON.parse(require("fs").readFileSync(process.argv[1]))' "$f" && ok "$f" || bad "$f"
done

echo "== docker-compose.yml structure"
python3 - <<'PY' && ok "services, depends_on, profiles, volumes" || bad "docker-compose.yml"
import os, yaml
doc = yaml.safe_load(open('docker-compose.yml'))
svcs = doc['services']
want = {'nats', 'timescaledb', 'migrate', 'supervisor', 'worker', 'gateway', 'prometheus', 'grafana'}
assert want <= set(svcs), want - set(svcs)
conds = {'service_started', 'service_healthy', 'service_completed_successfully'}
for name, s in svcs.items():
    dep = s.get('depends_on', {})
    dep = dep if isinstance(dep, dict) else {d: {'condition': 'service_started'} for d in dep}
    for d, c in dep.items():
        assert d in svcs, f'{name} depends on unknown {d}'
        assert c['condition'] in conds, (name, d, c)
        if c['condition'] == 'service_healthy':
            assert 'healthcheck' in svcs[d], f'{d} has no healthcheck'
        if c['condition'] == 'service_completed_successfully':
            assert svcs[d].get('restart', 'no') == 'no', f'{d} must not restart'
        if not s.get('profiles'):
            assert not svcs[d].get('profiles'), f'{name} (default) depends on profiled {d}'
    for v in s.get('volumes', []):
        src = v.split(':')[0]
        if src.startswith('./'):
            assert os.path.exists(src), f'{name}: {src} missing'
        else:
            assert src in (doc.get('volumes') or {}), f'{name}: volume {src} undeclared'
for name in ('prometheus', 'grafana'):
    assert svcs[name].get('profiles') == ['observability'], name
PY

echo "== kustomization references"
for k in $(find k8s -name kustomization.yaml | sort); do
  python3 - "$(dirname "$k")" <<'PY' || fail=1
import os, sys, yaml
d = sys.argv[1]
k = yaml.safe_load(open(os.path.join(d, 'kustomization.yaml')))
refs = list(k.get('resources', [])) + list(k.get('components', []))
refs += [p['path'] for p in k.get('patches', []) if 'path' in p]
for g in k.get('configMapGenerator', []) + k.get('secretGenerator', []):
    refs += [f.split('=', 1)[-1] for f in g.get('files', [])] + list(g.get('envs', []))
missing = [r for r in refs if not os.path.exists(os.path.join(d, r))]
for r in refs:
    print(('FAIL  missing ' if r in missing else 'ok    ') + os.path.normpath(os.path.join(d, r)))
sys.exit(1 if missing else 0)
PY
done

echo "== kustomize build"
if command -v kubectl >/dev/null; then
  for o in k8s/base k8s/overlays/dev k8s/overlays/prod; do
    out=$(kubectl kustomize "$o") && ok "$o ($(grep -c '^kind:' <<<"$out") objects)" || bad "$o"
  done
else skip "kubectl not installed"; fi

echo "== NATS configs"
if command -v nats-server >/dev/null; then
  for f in deploy/nats/nats.conf k8s/overlays/*/nats.conf; do
    # auth.conf takes every password from the environment; any value checks the syntax.
    env POD_NAME=nats-0 $(for p in OPERATOR SUPERVISOR WORKER GATEWAY EXCHANGE SYMBOL WRITER ALERTS; do
      echo "NATS_PASSWORD_$p=check"; done) nats-server -t -c "$f" >/dev/null 2>&1 && ok "$f" || bad "$f"
  done
else skip "nats-server not installed"; fi

exit $fail
