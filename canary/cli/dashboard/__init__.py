"""`canary dashboard`: a local web page of every Rollout, live from a watch.

`state` turns Rollouts and Events into the page's JSON (pure); `server` serves the page, the
JSON API and a server-sent-event stream on 127.0.0.1; `static/` is the page itself (plain
JavaScript, nothing from the internet; `charts.js` is a standalone SVG chart library).
"""
