-- wrk: a 10-second clip at a new random start for every request (30-minute file).
-- Three decimals: nginx's mp4 module reads no more. The seed is the script's first
-- argument (`wrk ... URL -- SEED`), so a warm-up run does not ask the measured run's starts.
init = function(args)
  math.randomseed(tonumber(args[1]) or 15)
end
request = function()
  local s = math.random() * 1790
  return wrk.format("GET", string.format("%s?start=%.3f&end=%.3f", wrk.path, s, s + 10))
end
