-- wrk script for bench/soak.sh: a mix of valid images, corrupt images and bad requests,
-- in a fixed weighted rotation, against a devnetd base URL (http://127.0.0.1:PORT).
--
--   wrk -t2 -c64 -d60s --latency -s bench/mix.lua http://127.0.0.1:PORT -- a.jpg b.jpg ...
--
-- The files after `--` are valid JPEGs. Every kind of request has the statuses it may get;
-- a POST is parsed on a worker, so each may also get 503 with Retry-After (the queue is
-- full); a wrong method or an unknown path is answered from the headers alone.
-- wrk does not say which request an answer belongs to, so the check is on the union:
-- an answer whose status no kind allows, or a 503 without Retry-After, is unexpected.
-- done() prints one line that bench/soak.sh parses:
--   MIX requests=N duration_s=S rps=R p50_ms=.. p99_ms=.. max_ms=.. unexpected=N
--       s5xx=N s503=N s503_no_retry_after=N socket_errors=N statuses=200:N,... sent=kind:N,...

local common = dofile("bench/wrk_common.lua")
local threads = {}

-- kind, weight in the rotation, the statuses it may get (top level: done() runs in the
-- main Lua state, where init() never ran)
KINDS = {
   {"valid_jpeg", 12, {[200] = true, [503] = true}},
   {"corrupt_jpeg", 2, {[422] = true, [503] = true}},
   {"broken_png", 1, {[422] = true, [503] = true}},
   {"wrong_content_type", 1, {[415] = true, [503] = true}},
   {"malformed_json", 1, {[400] = true, [503] = true}},
   {"bad_base64", 1, {[400] = true, [503] = true}},
   {"wrong_method", 1, {[405] = true}},
   {"unknown_path", 1, {[404] = true}},
   {"bad_label", 1, {[400] = true, [503] = true}},
}

function setup(thread)
   table.insert(threads, thread)
   thread:set("id", #threads)
end

-- Bytes that start like a JPEG and then are noise: the decoder must refuse them.
local function corrupt_jpeg(valid, seed)
   local parts = {string.sub(valid, 1, 20)}
   local x = seed
   for _ = 1, 4000 do
      x = (x * 1103515245 + 12345) % 2147483648
      parts[#parts + 1] = string.char(x % 256)
   end
   return table.concat(parts)
end

-- A PNG signature and header chunk with a broken CRC, then nothing.
local broken_png = "\137PNG\r\n\26\n\0\0\0\13IHDR\0\0\1\0\0\0\1\0\8\2\0\0\0\0\0\0\0"

function init(args)
   local jpegs = {}
   for _, path in ipairs(args) do
      local f = assert(io.open(path, "rb"))
      jpegs[#jpegs + 1] = f:read("*a")
      f:close()
   end
   assert(#jpegs > 0, "mix.lua: give the JPEG files after --")
   local jpeg = {["Content-Type"] = "image/jpeg"}
   local json = {["Content-Type"] = "application/json"}
   local fixed = {
      broken_png = {wrk.format("POST", "/score", {["Content-Type"] = "image/png"}, broken_png)},
      wrong_content_type = {wrk.format("POST", "/score", {["Content-Type"] = "text/plain"}, "hello")},
      malformed_json = {wrk.format("POST", "/score", json, '{"image": "AAAA')},
      bad_base64 = {wrk.format("POST", "/score", json, '{"image": "!!!not base64!!!"}')},
      wrong_method = {wrk.format("GET", "/score")},
      unknown_path = {wrk.format("GET", "/no/such/thing")},
      bad_label = {wrk.format("POST", "/feedback?label=maybe", jpeg, jpegs[1])},
   }
   kinds = {}
   for k, spec in ipairs(KINDS) do kinds[k] = {spec[1], spec[2], spec[3], fixed[spec[1]] or {}} end
   for i, body in ipairs(jpegs) do
      table.insert(kinds[1][4], wrk.format("POST", "/score", jpeg, body))
      table.insert(kinds[2][4], wrk.format("POST", "/score", jpeg, corrupt_jpeg(body, i)))
   end
   -- the rotation: each kind as often as its weight, spread out
   order = {}
   for k, kind in ipairs(kinds) do
      for _ = 1, kind[2] do order[#order + 1] = k end
   end
   local x = 12345
   for i = #order, 2, -1 do -- a fixed shuffle (the same in every thread)
      x = (x * 1103515245 + 12345) % 2147483648
      local j = x % i + 1
      order[i], order[j] = order[j], order[i]
   end
   allowed = {}
   for _, kind in ipairs(kinds) do
      for code, _ in pairs(kind[3]) do allowed[code] = true end
   end
   pos = (id or 0) * 5 % #order
   turn = {}
   sent = {}
   statuses = {}
   no_retry = 0
   unexpected = 0
end

function request()
   pos = pos % #order + 1
   local k = order[pos]
   local reqs = kinds[k][4]
   turn[k] = (turn[k] or 0) % #reqs + 1
   sent[k] = (sent[k] or 0) + 1
   return reqs[turn[k]]
end


function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   if status == 503 and not common.has_retry_after(headers) then
      no_retry = no_retry + 1
      unexpected = unexpected + 1
   elseif not allowed[status] then
      unexpected = unexpected + 1
   end
end

function done(summary, latency, requests)
   local per_kind, nr, un = {}, 0, 0
   for _, t in ipairs(threads) do
      for k, c in pairs(t:get("sent") or {}) do per_kind[k] = (per_kind[k] or 0) + c end
      nr = nr + (t:get("no_retry") or 0)
      un = un + (t:get("unexpected") or 0)
   end
   local all, codes, listed = common.statuses(threads)
   local s5xx = 0
   for _, code in ipairs(codes) do
      if code >= 500 then s5xx = s5xx + all[code] end
   end
   local names = {}
   for k, spec in ipairs(KINDS) do names[#names + 1] = spec[1] .. ":" .. (per_kind[k] or 0) end
   local e = summary.errors
   local secs = summary.duration / 1e6
   local function ms(p) return latency:percentile(p) / 1000 end
   io.write(string.format(
      "MIX requests=%d duration_s=%.3f rps=%.3f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f unexpected=%d " ..
      "s5xx=%d s503=%d s503_no_retry_after=%d socket_errors=%d statuses=%s sent=%s\n",
      summary.requests, secs, summary.requests / secs, ms(50), ms(99), latency.max / 1000, un,
      s5xx, all[503] or 0, nr, e.connect + e.read + e.write + e.timeout,
      listed, table.concat(names, ",")))
end
