#!/usr/bin/env bash
# Re-creates the vendored Chart.js in static/: the page must work with no internet, so the library
# is served by the plugin itself, never from a CDN. Only the UMD build and the licence are kept.
#
#   bash plugins/batch_cleanup/ui/vendor_chartjs.sh
#
# To upgrade: change VERSION, run the script with INTEGRITY="" to see the new value
# (`npm view chart.js@VERSION dist.integrity`), pin it below with the new SHA256, and run the tests.
set -euo pipefail
VERSION=4.6.1
# npm's integrity of the package tarball (`npm view chart.js@4.6.1 dist.integrity`).
INTEGRITY=${INTEGRITY-sha512-hJyniucsFmq//EvXYvJ6c6mahPoI3kaxdjVH8awTaJ/fDNWeSqqqArixMJWkWNN6fcYvPU3HneSANFNYtRi61g==}
# SHA-256 of dist/chart.umd.min.js in that tarball; tests/ui checks the vendored file against it.
SHA256=87364cc2b2a76a6684929e7d6b80b18a897794db38400caff1fcf1791c6925d2

static="$(cd "$(dirname "$0")" && pwd)/static"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack "chart.js@$VERSION" --silent >/dev/null
tarball="chart.js-$VERSION.tgz"
if [[ -n "$INTEGRITY" ]]; then
    actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
    [[ "$actual" == "$INTEGRITY" ]] || { echo "integrity mismatch: $actual != $INTEGRITY" >&2; exit 1; }
fi
tar xzf "$tarball"
echo "$SHA256  package/dist/chart.umd.min.js" | sha256sum --check --quiet
cp package/dist/chart.umd.min.js "$static/chart.umd.min.js"
cp package/LICENSE.md "$static/chart.js-LICENSE.md"
echo "vendored Chart.js $VERSION into $static"
