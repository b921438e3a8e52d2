# puma under `baton run`: baton is the master, puma runs in single mode as
# each of its workers. Use with:
#
#   baton run --pidfile /run/app.pid --listen 127.0.0.1:8080 --workers 2 \
#     --ready notify --defer-accept 30s --boot-nice 10 --dir /srv/app/current -- \
#     puma -C /etc/baton/puma.rb
#
# See the README, "puma under baton".

# The listening sockets come from baton (LISTEN_FDS): puma binds nothing.
bind_to_activated_sockets 'only'
# Single mode: baton runs the workers and upgrades them.
workers 0
threads 4, 4
environment ENV.fetch('RACK_ENV', 'production')

# Readiness without a fixed delay: once puma serves, tell baton READY=1 on
# the NOTIFY_SOCKET it gave this worker (`--ready notify`). Debian's puma has
# no sd_notify plugin; this one is registered here, in the configuration.
Puma::Plugins.register('baton_ready', Class.new do
  def start(launcher)
    launcher.events.on_booted do
      path = ENV['NOTIFY_SOCKET']
      next if path.nil? || path.empty?

      require 'socket'
      path = "\0#{path[1..]}" if path.start_with?('@')
      Socket.open(:UNIX, :DGRAM) do |s|
        s.connect(Socket.pack_sockaddr_un(path))
        s.write('READY=1')
      end
    end
  end
end)
plugin :baton_ready

# A clean stop. baton stops old workers with TERM on every upgrade, at full
# load; puma 5.6's graceful stop races the keep-alive requests it is still
# finishing, and each race answers one with a bare 500 (Server#client_error:
# "Read: #<IOError ...>" in the log). Three small patches close the three
# races; none changes what puma does when it is not stopping. They are
# written for puma 5.6 (Debian 12's 5.6.5) and left out, with a warning, on
# any other version. README, "puma under baton"; TestPumaStopRaces.
if Puma::Const::PUMA_VERSION.start_with?('5.6.')
  # 1. The listeners are baton's. Server#graceful_shutdown closes the
  #    worker's copies (server.rb:569) before its thread pool has finished,
  #    while a response being built can still poll them: after 10 requests
  #    on a keep-alive connection with every thread busy, str_headers asks
  #    whether a new connection waits (request.rb:441-443). Closing the
  #    listener under that wait raises IOError "stream closed in another
  #    thread" (or "closed stream" just after), outside the application's
  #    rescue: a 500 instead of the answer the application has just given.
  #    The worker's copies close when it exits; baton keeps the sockets open.
  Puma::Binder.prepend(Module.new do
    def close; end
  end)

  # 2. A keep-alive connection whose next request is not in yet goes back to
  #    the reactor (server.rb:470-476). If the stop shuts the reactor down
  #    between the check of @queue_requests and Reactor#add, add returns
  #    false and process_client calls handle_request with no request read:
  #    normalize_env raises URI::InvalidURIError, a 500. Close the connection
  #    instead, as puma's stop does with every idle keep-alive connection
  #    (the client retries on a new one, answered by the new workers).
  Puma::Server.prepend(Module.new do
    def handle_request(client, *rest)
      return false unless client.ready

      super
    end
  end)

  # 3. Once Reactor#add has put a client on the reactor's queue the reactor
  #    owns it, even if it shuts down and closes its selector before
  #    @selector.wakeup: that IOError ("selector is closed", reactor.rb:51)
  #    made the caller answer 500 and close a connection the reactor had
  #    already handed on or closed. The reactor drains its queue before it
  #    stops, so the client is served or closed there.
  Puma::Reactor.prepend(Module.new do
    def add(client)
      @input << client
    rescue ClosedQueueError
      false
    else
      begin
        @selector.wakeup
      rescue IOError
        nil # the reactor has stopped after taking the client
      end
      true
    end
  end)
else
  warn "baton puma.rb: the graceful-stop patches are for puma 5.6, not #{Puma::Const::PUMA_VERSION}: " \
       'not applied (README, "puma under baton")'
end
