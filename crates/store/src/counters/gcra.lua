-- GCRA rate limits of one key, on Redis' clock, in exact integers below 2^53.
--
-- Per limit L (units a minute) the hash KEYS[1] holds, under a field prefix p ('r' for
-- requests, 't' for tokens): p..'t' the time of the last update (ms), p..'b' the busy
-- time scaled by L (ms x units: one unit costs exactly 60000, the whole limit 60000 x L)
-- and p..'l' the L it is scaled by, so a changed limit rescales and keeps the time.
--
-- A call takes a batch, each item against its key in KEYS, applied in order on one
-- reading of the clock; every key is read once (both limits in one HMGET) and written
-- once at the end (one HSET, one expiry check), so a batch is what its items one call
-- each would have been at that instant.
--
-- A reply is one string of integers separated by spaces (read in one piece by the
-- client, where an array costs a parse per element).
--
-- ARGV[1] = 'admit': admissions, four arguments each: the index of its key in KEYS, the
--   requests limit, the tokens limit (0: none), the tokens' cost. Each checks every
--   limit of its key and writes none unless all admit. Returns now, then per admission:
--   whether every limit admitted it (1|0), then per limit (requests, tokens) the busy
--   value after it (0 when the limit is off): what the admission wrote when all admitted,
--   the bucket as it stands when not. The client derives the rest (whether each limit
--   alone would admit, the wait, what remains, the reset) from these and what it asked.
-- ARGV[1] = 'settle': corrections, seven arguments each: the index of its key in KEYS,
--   field prefix, limit, 'charge' | 'refund', units, admitted at (ms), busy right after
--   that admission. A refund never gives back more than is still in the bucket from
--   that admission. Returns the busy value after each correction.
-- ARGV[1] = 'settle_admit': ARGV[2] = c, then c corrections as 'settle' takes them, then
--   admissions as 'admit' takes them; the corrections apply first. Returns what 'admit'
--   returns. (Corrections ride on the admissions' round trip.)

local PERIOD = 60000
local MAX_BUSY = 4503599627370496 -- 2^52
-- The most a refused admission's busy value is answered as (2^63 - 1024, the largest
-- double below 2^63): a limit raised far above what its bucket was filled under rescales
-- the bucket past 2^63, where formatting it as an integer would overflow.
local MAX_REPLY = 9223372036854774784

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function int(x)
  return string.format('%d', x)
end

-- The reply: `values` (integers) as one string.
local function reply(values)
  for i = 1, #values do values[i] = int(values[i]) end
  return table.concat(values, ' ')
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

-- Every key of the call, as read (per field prefix: time, busy, scale) and as changed.
local keys, order = {}, {}

local function state(k)
  local s = keys[k]
  if s == nil then
    if KEYS[k] == nil then error('gcra.lua: no key ' .. tostring(k)) end
    local v = redis.call('HMGET', KEYS[k], 'rt', 'rb', 'rl', 'tt', 'tb', 'tl')
    s = { r = { t = v[1], b = v[2], l = v[3] }, t = { t = v[4], b = v[5], l = v[6] }, written = {} }
    keys[k] = s
    order[#order + 1] = k
  end
  return s
end

local function set(s, p, b, limit, now)
  s[p].t, s[p].b, s[p].l = now, b, limit
  s.written[p] = true
end

local function flush(now)
  for _, k in ipairs(order) do
    local s = keys[k]
    local fields, ttl = {}, 0
    for _, p in ipairs({ 'r', 't' }) do
      if s.written[p] then
        local b, limit = s[p].b, s[p].l
        fields[#fields + 1] = p .. 't'
        fields[#fields + 1] = int(now)
        fields[#fields + 1] = p .. 'b'
        fields[#fields + 1] = int(b)
        fields[#fields + 1] = p .. 'l'
        fields[#fields + 1] = int(limit)
        ttl = math.max(ttl, ceil_div(b, limit) + 1000)
      end
    end
    if #fields > 0 then
      redis.call('HSET', KEYS[k], unpack(fields))
      if redis.call('PTTL', KEYS[k]) < ttl then redis.call('PEXPIRE', KEYS[k], ttl) end
    end
  end
end

-- Admits the admissions in ARGV[first .. last] in order; answers as 'admit' does.
local function admit(first, last, now)
  local out, n = { now }, 1
  for i = first, last, 4 do
    local s = state(tonumber(ARGV[i]))
    local rl, tl, cost = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
    -- Every limit is checked before any is written.
    local rb, rneed, tb, tneed = 0, 0, 0, 0
    local all = true
    if rl > 0 then
      local cur = s.r
      rb = busy_of(cur.t, cur.b, cur.l, rl, now)
      rneed = rb + PERIOD
      all = rneed <= PERIOD * rl
    end
    if tl > 0 then
      local cur = s.t
      tb = busy_of(cur.t, cur.b, cur.l, tl, now)
      tneed = tb + PERIOD * math.min(cost, tl)
      all = all and tneed <= PERIOD * tl
    end
    if all then
      if rl > 0 then set(s, 'r', rneed, rl, now) end
      if tl > 0 then set(s, 't', tneed, tl, now) end
      out[n + 1], out[n + 2], out[n + 3] = 1, rneed, tneed
    else
      out[n + 1], out[n + 2], out[n + 3] = 0, math.min(rb, MAX_REPLY), math.min(tb, MAX_REPLY)
    end
    n = n + 3
  end
  return out
end

-- Applies the corrections in ARGV[first .. last] in order; answers the busy value after
-- each, or nil and an error reply.
local function settle(first, last, now)
  local out = {}
  for i = first, last, 7 do
    local s, p = state(tonumber(ARGV[i])), ARGV[i + 1]
    if p ~= 'r' and p ~= 't' then return nil, redis.error_reply('gcra.lua: unknown limit ' .. p) end
    local limit, kind, units = tonumber(ARGV[i + 2]), ARGV[i + 3], tonumber(ARGV[i + 4])
    local cur = s[p]
    local b, same = busy_of(cur.t, cur.b, cur.l, limit, now)
    if kind == 'charge' then
      b = math.min(b + PERIOD * units, MAX_BUSY)
      set(s, p, b, limit, now)
    elseif same then
      local left = drained(tonumber(ARGV[i + 6]), tonumber(ARGV[i + 5]), limit, now)
      b = b - math.min(PERIOD * units, left, b)
      set(s, p, b, limit, now)
    end
    out[#out + 1] = b
  end
  return out
end

local op = ARGV[1]
local function malformed(what, arity)
  return redis.error_reply('gcra.lua: ' .. what .. ' takes ' .. arity .. ' arguments an item')
end
if op == 'admit' then
  if (#ARGV - 1) % 4 ~= 0 then return malformed(op, 4) end
  local now = now_ms()
  local out = admit(2, #ARGV, now)
  flush(now)
  return reply(out)
elseif op == 'settle' then
  if (#ARGV - 1) % 7 ~= 0 then return malformed(op, 7) end
  local now = now_ms()
  local out, failed = settle(2, #ARGV, now)
  if not out then return failed end
  flush(now)
  return reply(out)
elseif op == 'settle_admit' then
  local c = tonumber(ARGV[2])
  local split = c and 3 + 7 * c
  if not c or c < 0 or c % 1 ~= 0 or split - 1 > #ARGV or (#ARGV - split + 1) % 4 ~= 0 then
    return redis.error_reply('gcra.lua: settle_admit takes a count of corrections, 7 arguments each, then 4 an admission')
  end
  local now = now_ms()
  local done, failed = settle(3, split - 1, now)
  if not done then return failed end
  local out = admit(split, #ARGV, now)
  flush(now)
  return reply(out)
end
return redis.error_reply('gcra.lua: unknown operation')
