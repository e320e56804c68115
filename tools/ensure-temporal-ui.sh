#!/usr/bin/env bash
# Prints the path of the Temporal Web UI server (temporalio/ui-server, MIT), built from its Go module,
# for a Temporal server that is not the dev server (`npm run temporal:cluster`): the dev server has the
# UI built in. The module carries the UI's built assets, so the binary serves the whole UI.
# Cached outside the clone in ${C2D_TOOLS_DIR:-~/.cache/c2d/tools}/temporal-ui-<version>; a second run
# only checks that it is there.
set -euo pipefail
version=${C2D_TEMPORAL_UI_VERSION:-v2.42.1}
tools=${C2D_TOOLS_DIR:-$HOME/.cache/c2d/tools}
source "$(dirname "$0")/lib/go-install.sh"
go_install_cached "$tools/temporal-ui-$version" "github.com/temporalio/ui-server/v2/cmd/server@$version" "the Temporal Web UI server $version" "about a minute"
