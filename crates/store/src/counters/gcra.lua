-- GCRA rate limits of one key, on Redis' clock, in exact integers below 2^53.
--
-- Per limit L (units a minute) the hash KEYS[1] holds, under a field prefix p ('r' for
-- requests, 't' for tokens): p..'t' the time of the last update (ms), p..'b' the busy
-- time scaled by L (ms x units: one unit costs exactly 60000, the whole limit 60000 x L)
-- and p..'l' the L it is scaled by, so a changed limit rescales and keeps the time.
--
-- ARGV[1] = 'admit': ARGV[2] requests limit, ARGV[3] tokens limit (0: none), ARGV[4] the
--   tokens' cost. Checks every limit, writes none unless all admit. Returns
--   {now, then per limit (requests, tokens): admitted (1|0), wait ms, remaining, reset ms, busy}.
-- ARGV[1] = 'settle': ARGV[2] field prefix, ARGV[3] limit, ARGV[4] 'charge' | 'refund',
--   ARGV[5] units, ARGV[6] admitted at (ms), ARGV[7] busy right after that admission.
--   A refund never gives back more than is still in the bucket from that admission.
--   Returns the busy value after.

local PERIOD = 60000
local MAX_BUSY = 4503599627370496 -- 2^52
local key = KEYS[1]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function int(x)
  return string.format('%d', x)
end

-- x / d rounded up, exactly (x, d integers, x < 2^53).
local function ceil_div(x, d)
  local q = math.floor(x / d)
  if q * d < x then q = q + 1 elseif q * d - d >= x then q = q - 1 end
  return q
end

-- What is left at `now` of busy `b` (scaled by `limit`) written at `t`.
local function drained(b, t, limit, now)
  if b <= 0 then return 0 end
  if now <= t then return b end
  local elapsed = now - t
  -- Past b / limit the bucket is idle; below it, elapsed x limit < b + limit < 2^53.
  if elapsed > math.floor(b / limit) + 1 then return 0 end
  local spent = elapsed * limit
  if spent >= b then return 0 end
  return b - spent
end

-- The busy value at `now` under `limit` of a limit stored as time `t`, busy `b` and
-- scale `l` (strings as HMGET returns them, or false), and whether the stored limit was
-- the same.
local function busy_of(t, b, l, limit, now)
  t, b, l = tonumber(t), tonumber(b), tonumber(l)
  if not t or not b or not l or l <= 0 then return 0, false end
  local same = l == limit
  if not same then
    if b * limit < MAX_BUSY then b = math.floor(b * limit / l) else b = math.floor(b / l * limit) end
  end
  return drained(b, t, limit, now), same
end

-- The busy value of field prefix `p` at `now` under `limit` (one HMGET).
local function busy(p, limit, now)
  local v = redis.call('HMGET', key, p .. 't', p .. 'b', p .. 'l')
  return busy_of(v[1], v[2], v[3], limit, now)
end

local function write(p, limit, b, now)
  redis.call('HSET', key, p .. 't', int(now), p .. 'b', int(b), p .. 'l', int(limit))
  local ttl = ceil_div(b, limit) + 1000
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end

local op = ARGV[1]
if op == 'admit' then
  local now = now_ms()
  local limits = { { 'r', tonumber(ARGV[2]), 1 }, { 't', tonumber(ARGV[3]), tonumber(ARGV[4]) } }
  -- Both limits in one read, one write and one expiry check.
  local v = redis.call('HMGET', key, 'rt', 'rb', 'rl', 'tt', 'tb', 'tl')
  local checked = {}
  local all = true
  for i, l in ipairs(limits) do
    local limit = l[2]
    if limit > 0 then
      local b = busy_of(v[3 * i - 2], v[3 * i - 1], v[3 * i], limit, now)
      local cost = math.min(l[3], limit)
      local need = b + PERIOD * cost
      local capacity = PERIOD * limit
      local ok = need <= capacity
      all = all and ok
      checked[i] = { b = b, need = need, capacity = capacity, ok = ok }
    end
  end
  local out = { now }
  local fields = {}
  local ttl = 0
  for i, l in ipairs(limits) do
    local c, limit = checked[i], l[2]
    if c == nil then
      for _ = 1, 5 do out[#out + 1] = 0 end
    else
      local after = c.b
      if all then
        after = c.need
        local p = l[1]
        fields[#fields + 1] = p .. 't'
        fields[#fields + 1] = int(now)
        fields[#fields + 1] = p .. 'b'
        fields[#fields + 1] = int(after)
        fields[#fields + 1] = p .. 'l'
        fields[#fields + 1] = int(limit)
        ttl = math.max(ttl, ceil_div(after, limit) + 1000)
      end
      local wait = 0
      if not c.ok then wait = ceil_div(c.need - c.capacity, limit) end
      local remaining = math.floor((c.capacity - math.min(after, c.capacity)) / PERIOD)
      out[#out + 1] = c.ok and 1 or 0
      out[#out + 1] = wait
      out[#out + 1] = remaining
      out[#out + 1] = ceil_div(after, limit)
      out[#out + 1] = after
    end
  end
  if #fields > 0 then
    redis.call('HSET', key, unpack(fields))
    if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
  end
  return out
elseif op == 'settle' then
  local now = now_ms()
  local p, limit, kind, units = ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
  local b, same = busy(p, limit, now)
  if kind == 'charge' then
    b = math.min(b + PERIOD * units, MAX_BUSY)
  elseif same then
    local left = drained(tonumber(ARGV[7]), tonumber(ARGV[6]), limit, now)
    b = b - math.min(PERIOD * units, left, b)
  else
    return b
  end
  write(p, limit, b, now)
  return b
end
return redis.error_reply('gcra.lua: unknown operation')
