-- One round trip for everything the request pipeline asks of Redis: revocation marks, bans
-- and every limit of every level, atomically (concurrent requests cannot slip through).
--
-- KEYS: [revocation keys...] then per level: ban, hits, offenses, one TAT key per limit.
-- ARGV: n_revocation, n_levels, ban_after, ban_window_s, ban_ms, max_factor, then per level:
--       n_limits, (count, period_ms) per limit.
-- Reply: {status, level, a, b, c}
--   status 0 allowed: a = limit, b = remaining, c = reset_ms of the tightest limit
--   status 1 limited: level = index, a = retry_ms, then limit/remaining/reset_ms fields
--   status 2 banned:  level = index, a = ban ms left, b = 1 when this request started it
--   status 3 revoked: level = index of the revocation key
-- Limits use GCRA: a TAT (theoretical arrival time) per limit, no window boundaries.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000

local n_rev = tonumber(ARGV[1])
for i = 1, n_rev do
  if redis.call('EXISTS', KEYS[i]) == 1 then return {3, i, 0, 0, 0} end
end

local n_levels = tonumber(ARGV[2])
local ban_after, ban_window = tonumber(ARGV[3]), tonumber(ARGV[4])
local ban_ms, max_factor = tonumber(ARGV[5]), tonumber(ARGV[6])

local levels = {}
local k, a = n_rev + 1, 7
for l = 1, n_levels do
  local left = redis.call('PTTL', KEYS[k])
  if left > 0 then return {2, l, left, 0, 0} end
  local n = tonumber(ARGV[a])
  levels[l] = {k = k, a = a, n = n}
  k = k + 3 + n
  a = a + 1 + 2 * n
end

local updates = {}
local limited_level, retry = nil, 0
local best_limit, best_remaining, best_reset = 0, -1, 0
for l = 1, n_levels do
  local lv = levels[l]
  for j = 1, lv.n do
    local count = tonumber(ARGV[lv.a + 2 * j - 1])
    local period = tonumber(ARGV[lv.a + 2 * j])
    local key = KEYS[lv.k + 2 + j]
    local interval = period / count
    local tat = tonumber(redis.call('GET', key) or now)
    if tat < now then tat = now end
    local new_tat = tat + interval
    local remaining, reset
    if new_tat - period > now then
      local wait = new_tat - period - now
      if limited_level == nil then limited_level = l end
      if wait > retry then retry = wait end
      remaining, reset = 0, tat
    else
      remaining = math.floor((period - (new_tat - now)) / interval)
      reset = new_tat
      updates[#updates + 1] = {key, new_tat}
    end
    if best_remaining < 0 or remaining < best_remaining then
      best_limit, best_remaining, best_reset = count, remaining, reset
    end
  end
end

if limited_level ~= nil then
  local lv = levels[limited_level]
  local hits = redis.call('INCR', KEYS[lv.k + 1])
  if hits == 1 then redis.call('EXPIRE', KEYS[lv.k + 1], ban_window) end
  if hits > ban_after then
    local offenses = redis.call('INCR', KEYS[lv.k + 2])
    redis.call('EXPIRE', KEYS[lv.k + 2], 7 * 86400)
    local factor = math.min(2 ^ (offenses - 1), max_factor)
    local length = math.floor(ban_ms * factor)
    redis.call('SET', KEYS[lv.k], offenses, 'PX', length)
    redis.call('DEL', KEYS[lv.k + 1])
    return {2, limited_level, length, 1, 0}
  end
  return {1, limited_level, math.ceil(retry), best_limit, math.floor(best_reset)}
end

for _, u in ipairs(updates) do
  redis.call('SET', u[1], string.format('%.3f', u[2]), 'PX', math.ceil(u[2] - now) + 1)
end
return {0, 0, best_limit, best_remaining, math.floor(best_reset)}
