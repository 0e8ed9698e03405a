# Prints "enqueued=N finished=N queued=N lost=N": a job is safe when it finished or is back
# in the queue; anything else was lost in the stop.
require "json"
require "redis"
r = Redis.new(url: ENV.fetch("REDIS_URL"))
enqueued = Integer(ARGV[0])
finished = r.lrange("done", 0, -1).map(&:to_i)
queued = r.lrange("queue:default", 0, -1).map { |j| JSON.parse(j)["args"][0] }
safe = (finished + queued).uniq
puts "enqueued=#{enqueued} finished=#{finished.uniq.size} queued=#{queued.uniq.size} lost=#{enqueued - safe.size}"
