-- bench/audit/post.lua - wrk script: POST a small benign chat request, print one parsable line
-- SPDX-License-Identifier: Apache-2.0
-- A prompt every policy of the page's chain passes, so both gateways serve the happy path
-- (a 403 from a detector would measure the refusal path instead and count as an error).
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer unused"
wrk.headers["X-Wandb-Run-Id"] = "bench-run"
wrk.body = '{"model":"gpt-4o","messages":[{"role":"user","content":' ..
    '"What was the best accuracy of the last run?"}]}'

function done(summary, latency, requests)
    local errors = summary.errors.connect + summary.errors.read + summary.errors.write +
        summary.errors.status + summary.errors.timeout
    io.write(string.format("BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d " ..
        "errors=%d\n", summary.requests, summary.duration,
        summary.requests / (summary.duration / 1e6), latency:percentile(50),
        latency:percentile(99), errors))
end
