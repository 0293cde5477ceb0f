-- wrk: the audio from a new random start to the end for every request (30-minute file).
-- The seed is the script's first argument (`wrk ... URL -- SEED`), so a warm-up run does
-- not ask the measured run's starts.
init = function(args)
  math.randomseed(tonumber(args[1]) or 15)
end
request = function()
  local s = math.random() * 1790
  return wrk.format("GET", string.format("%s?ali_audio_only=1&start=%.3f", wrk.path, s))
end
