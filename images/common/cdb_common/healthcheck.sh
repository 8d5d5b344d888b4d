#!/bin/bash
# Docker health probe of a service image: GET http://127.0.0.1:$HTTP_PORT/health, exit 0 on HTTP 200,
# the body on stdout (Docker keeps it in the health log). bash's /dev/tcp, not Python or curl: a Python
# start costs 80-100 ms of CPU, every 10 s in every service — stalls the pipeline feels on a 2-core host;
# this costs 5 ms. Arguments (both optional): PORT PATH.
port="${1:-${HTTP_PORT:-8000}}" path="${2:-/health}"
if ! exec 3<>"/dev/tcp/127.0.0.1/${port}"; then
  echo "health probe failed: nothing accepts connections on 127.0.0.1:${port}"
  exit 1
fi 2>/dev/null
printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
# the whole answer: the service closes the connection after it (HTTP/1.0); Docker's timeout bounds the rest
IFS= read -r -t 3 -d '' answer <&3
printf '%s\n' "${answer#*$'\r\n\r\n'}"
[[ ${answer%%$'\r'*} == "HTTP/1."?" 200"* ]]
