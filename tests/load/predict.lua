-- wrk script for tests/load/run.sh: POSTs request bodies to /api/predict in rotation and sorts
-- the answers by status and kind.
--
--   wrk ... URL -s tests/load/predict.lua -- LIST
--
-- With LOAD_DELAY_MS set in its environment, each connection waits that many milliseconds before each
-- request (run.sh paces the malformed requests so; the others go as fast as answers come back).
--
-- LIST has one line per body, "KIND FILE": FILE is sent as the body of POST /api/predict, except
-- for kinds starting with "raw-", whose FILE is a whole HTTP request sent as it is (a chunked body,
-- which wrk.format cannot write). Each thread starts at a different place in the list. done()
-- prints "result NAME VALUE" lines for run.sh to read: the totals, the latency percentiles, the
-- status classes, and the answers sorted by what they say (a digit, no digit, or which error).

local threads = {}

local pause = tonumber(os.getenv("LOAD_DELAY_MS") or "") or 0
if pause > 0 then
    function delay()
        return pause
    end
end

function setup(thread)
    thread:set("id", #threads)
    table.insert(threads, thread)
end

local function slurp(path)
    local f = assert(io.open(path, "rb"))
    local data = f:read("*a")
    f:close()
    return data
end

function init(args)
    reqs = {}
    for line in io.lines(args[1]) do
        local kind, path = line:match("^(%S+)%s+(.+)$")
        if kind then
            if kind:sub(1, 4) == "raw-" then
                table.insert(reqs, slurp(path))
            else
                table.insert(reqs, wrk.format("POST", "/api/predict",
                    { ["Content-Type"] = "application/octet-stream" }, slurp(path)))
            end
        end
    end
    assert(#reqs > 0, "no bodies in " .. args[1])
    next_req = (id * 7) % #reqs
    counts = {}
end

function request()
    next_req = next_req % #reqs + 1
    return reqs[next_req]
end

local function count(name)
    counts[name] = (counts[name] or 0) + 1
end

-- What an answer says: a digit, no digit, or which error.
local function answer_kind(body)
    if body:match('^{"digit":%d,"probability":') then return "digit" end
    if body:match('^{"digit":null,') then return "no-digit" end
    local patterns = {
        { "malformed JSON", "malformed-json" },
        { "expected an object", "not-an-object" },
        { "holds %d+ values", "wrong-pixel-count" },
        { "is not a number 0..255", "bad-pixel" },
        { "body over 1 MB", "too-large-body" },
        { "over the limit", "too-many-pixels" },
        { '"error":"PNG', "bad-png" },
        { "not a PNG, JPEG", "not-an-image" },
        { "empty body", "empty-body" },
    }
    for _, p in ipairs(patterns) do
        if body:find(p[1]) then return p[2] end
    end
    return "other"
end

function response(status, headers, body)
    count("status-" .. math.floor(status / 100) .. "xx")
    count("status-" .. status)
    count("answer-" .. answer_kind(body or ""))
end

function done(summary, latency, requests)
    local total = {}
    for _, t in ipairs(threads) do
        for k, v in pairs(t:get("counts") or {}) do
            total[k] = (total[k] or 0) + v
        end
    end
    local function out(name, value) io.write(string.format("result %s %s\n", name, tostring(value))) end
    out("requests", summary.requests)
    out("seconds", string.format("%.3f", summary.duration / 1e6))
    out("rps", string.format("%.1f", summary.requests / (summary.duration / 1e6)))
    out("p50_ms", string.format("%.2f", latency:percentile(50) / 1000))
    out("p90_ms", string.format("%.2f", latency:percentile(90) / 1000))
    out("p99_ms", string.format("%.2f", latency:percentile(99) / 1000))
    out("max_ms", string.format("%.2f", latency.max / 1000))
    for _, e in ipairs({ "connect", "read", "write", "timeout" }) do
        out("errors_" .. e, summary.errors[e])
    end
    local names = {}
    for k in pairs(total) do table.insert(names, k) end
    table.sort(names)
    for _, k in ipairs(names) do out(k, total[k]) end
end
