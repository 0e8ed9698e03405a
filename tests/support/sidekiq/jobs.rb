require "sidekiq"
class SlowJob
  include Sidekiq::Worker
  def perform(id, secs)
    sleep secs
    Sidekiq.redis { |r| r.rpush("done", id) }
  end
end
