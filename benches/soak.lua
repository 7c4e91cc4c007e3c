-- wrk script for benches/soak: the mixed load. Each request is the next of the mix in
-- turn; each response is counted by status and by body length (the static file, the
-- theme asset and uWSGI's hello differ in length, so a short or misrouted body shows).
-- done() prints the counts, one "soak KIND KEY N" line each, for the soak to read.
local mix = {
  { "static", "GET", "/static/1k.txt" },
  { "theme", "GET", "/_themes/aurora/css/theme.css" },
  { "hello", "GET", "/hello" },
  { "post", "POST", "/hello", string.rep("p", 100 * 1024) },
}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- per wrk thread (each has its own Lua state): the formatted requests and the counters
function init(args)
  prepared, sent, statuses, lengths = {}, {}, {}, {}
  for i, m in ipairs(mix) do
    local headers = { Host = "localhost" }
    if m[4] then
      headers["Content-Type"] = "application/octet-stream"
    end
    prepared[i] = wrk.format(m[2], m[3], headers, m[4])
    sent[m[1]] = 0
  end
  turn = 0
end

function request()
  turn = turn % #mix + 1
  sent[mix[turn][1]] = sent[mix[turn][1]] + 1
  return prepared[turn]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  lengths[#body] = (lengths[#body] or 0) + 1
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for kind, counts in pairs({ sent = thread:get("sent"), status = thread:get("statuses"), length = thread:get("lengths") }) do
      for key, n in pairs(counts) do
        io.write(string.format("soak %s %s %d\n", kind, key, n))
      end
    end
  end
end
