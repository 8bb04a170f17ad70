#!/bin/sh
# Entrypoint of the Gatehouse image: the first argument names what to run.
#   session-service | gateway | demo-app   run that service (node dist/<service>/src/main.js)
#   users <command> [options]              the users CLI, e.g.
#                                          docker-compose run --rm session-service users add alice
#   dev-cert <dir>                         a self-signed development certificate in <dir>
#                                          (docker-compose's one-shot certs service)
#   healthcheck                            the image's HEALTHCHECK: is this container's service ready?
# Anything else runs as given (sh, node ...), for debugging.
set -eu
cd /app

case "${1:-}" in
  session-service | gateway | demo-app)
    service="$1"
    shift
    exec node "dist/$service/src/main.js" "$@"
    ;;
  users)
    shift
    exec node dist/session-service/src/cli/users.js "$@"
    ;;
  dev-cert | healthcheck)
    script="$1"
    shift
    exec node "dist/scripts/$script.js" "$@"
    ;;
  '' | help | -h | --help)
    echo "usage: session-service | gateway | demo-app | users <command> [options] | dev-cert <dir> | healthcheck" >&2
    exit 64
    ;;
  *)
    exec "$@"
    ;;
esac
