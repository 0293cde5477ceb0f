-- wrk: a 10-second clip at a new random start for every request (30-minute file).
-- Three decimals: nginx's mp4 module reads no more.
math.randomseed(15)
request = function()
  local s = math.random() * 1790
  return wrk.format("GET", string.format("%s?start=%.3f&end=%.3f", wrk.path, s, s + 10))
end
