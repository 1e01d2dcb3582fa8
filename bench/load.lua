-- wrk script for bench/load.sh: POSTs raw JPEG bodies to /score, rotating over the files
-- given after `--` on the wrk command line, and counts the answers by status.
--
--   wrk -t1 -c8 -d20s --latency -s bench/load.lua http://127.0.0.1:PORT/score -- a.jpg b.jpg
--
-- done() prints one line that bench/load.sh parses:
--   LOAD requests=N duration_s=S rps=R p50_ms=.. p90_ms=.. p99_ms=.. max_ms=.. non2xx=N
--        s503=N s503_no_retry_after=N socket_errors=N statuses=200:N,503:N
--        t_queue=.. t_decode=.. t_inference=.. t_total=.. timed=N
-- (t_* are the means of the answers' timing_ms fields over the 200 answers, in ms.)

local common = dofile("bench/wrk_common.lua")
local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("id", #threads)
end

function init(args)
   reqs = {}
   for _, path in ipairs(args) do
      local f = assert(io.open(path, "rb"))
      local body = f:read("*a")
      f:close()
      reqs[#reqs + 1] = wrk.format("POST", nil, {["Content-Type"] = "image/jpeg"}, body)
   end
   assert(#reqs > 0, "load.lua: give the JPEG files after --")
   -- threads start at different images so that they do not move in lockstep
   idx = (id or 0) % #reqs
   statuses = {}
   no_retry = 0
   tq, td, ti, tt, timed = 0, 0, 0, 0, 0
end

function request()
   idx = idx % #reqs + 1
   return reqs[idx]
end


function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   if status == 503 and not common.has_retry_after(headers) then
      no_retry = no_retry + 1
   end
   if status == 200 then
      local q, d, i, t = string.match(body,
         '"timing_ms":{"queue":([-%d.eE+]+),"decode":([-%d.eE+]+),"inference":([-%d.eE+]+),"total":([-%d.eE+]+)}')
      if q then
         tq, td, ti, tt = tq + q, td + d, ti + i, tt + t
         timed = timed + 1
      end
   end
end

function done(summary, latency, requests)
   local nr, sq, sd, si, st, n = 0, 0, 0, 0, 0, 0
   for _, t in ipairs(threads) do
      nr = nr + (t:get("no_retry") or 0)
      sq, sd = sq + (t:get("tq") or 0), sd + (t:get("td") or 0)
      si, st = si + (t:get("ti") or 0), st + (t:get("tt") or 0)
      n = n + (t:get("timed") or 0)
   end
   local all, codes, listed = common.statuses(threads)
   local non2xx = 0
   for _, code in ipairs(codes) do
      if code < 200 or code > 299 then non2xx = non2xx + all[code] end
   end
   local e = summary.errors
   local secs = summary.duration / 1e6
   local function ms(p) return latency:percentile(p) / 1000 end
   local function mean(x) return n > 0 and x / n or 0 end
   io.write(string.format(
      "LOAD requests=%d duration_s=%.3f rps=%.3f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f " ..
      "non2xx=%d s503=%d s503_no_retry_after=%d socket_errors=%d statuses=%s " ..
      "t_queue=%.3f t_decode=%.3f t_inference=%.3f t_total=%.3f timed=%d\n",
      summary.requests, secs, summary.requests / secs, ms(50), ms(90), ms(99), latency.max / 1000,
      non2xx, all[503] or 0, nr, e.connect + e.read + e.write + e.timeout,
      listed, mean(sq), mean(sd), mean(si), mean(st), n))
end
