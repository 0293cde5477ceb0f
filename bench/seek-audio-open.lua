-- wrk: the audio from a new random start to the end for every request (30-minute file).
math.randomseed(15)
request = function()
  local s = math.random() * 1790
  return wrk.format("GET", string.format("%s?ali_audio_only=1&start=%.3f", wrk.path, s))
end
