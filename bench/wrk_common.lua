-- Shared by bench/load.lua and bench/mix.lua (loaded with dofile; wrk runs from the
-- project root): the pieces of answer bookkeeping both need.

local M = {}

-- Whether an answer's headers carry Retry-After (any case).
function M.has_retry_after(headers)
   for k, _ in pairs(headers) do
      if string.lower(k) == "retry-after" then return true end
   end
   return false
end

-- The per-status counts of every thread summed, and "code:n,code:n" in code order.
function M.statuses(threads)
   local all, codes, parts = {}, {}, {}
   for _, t in ipairs(threads) do
      for code, c in pairs(t:get("statuses") or {}) do all[code] = (all[code] or 0) + c end
   end
   for code, _ in pairs(all) do codes[#codes + 1] = code end
   table.sort(codes)
   for _, code in ipairs(codes) do parts[#parts + 1] = code .. ":" .. all[code] end
   return all, codes, #parts > 0 and table.concat(parts, ",") or "none"
end

return M
