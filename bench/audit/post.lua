-- bench/audit/post.lua - wrk script: POST a small benign chat request, print one parsable line
-- SPDX-License-Identifier: Apache-2.0
-- bench/gateway/post.lua with a prompt every policy of the page's chain passes, so both gateways
-- serve the happy path (a 403 from a detector would measure the refusal path instead and count
-- as an error), and a run id for the audit record.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "../gateway/post.lua")
wrk.headers["X-Wandb-Run-Id"] = "bench-run"
wrk.body = '{"model":"gpt-4o","messages":[{"role":"user","content":' ..
    '"What was the best accuracy of the last run?"}]}'
