-- bench/gateway/post.lua - wrk script: POST a small chat request, print one parsable line
-- SPDX-License-Identifier: Apache-2.0
--
--   wrk ... -s post.lua URL            a plain chat completion (JSON answer)
--   wrk ... -s post.lua URL -- sse     the same with "stream":true and Accept: text/event-stream
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer unused"
wrk.body = '{"model":"gpt-4o","messages":[{"role":"user","content":' ..
    '"Summarise the validation loss trend of run 42 in one sentence."}]}'

-- Runs before wrk builds its request, in every thread.
function init(args)
    if args[1] == "sse" then
        wrk.headers["Accept"] = "text/event-stream"
        wrk.body = '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":' ..
            '"Summarise the validation loss trend of run 42 in one sentence."}]}'
    end
end

-- Latencies are in microseconds. Non-2xx answers count as errors: a run with errors
-- measured something other than the happy path and is flagged by run.sh.
function done(summary, latency, requests)
    local errors = summary.errors.connect + summary.errors.read + summary.errors.write +
        summary.errors.status + summary.errors.timeout
    io.write(string.format("BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d " ..
        "errors=%d\n", summary.requests, summary.duration,
        summary.requests / (summary.duration / 1e6), latency:percentile(50),
        latency:percentile(99), errors))
end
