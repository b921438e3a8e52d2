# puma under `baton run`: baton is the master, puma runs in single mode as
# each of its workers. Use with:
#
#   baton run --pidfile /run/app.pid --listen 127.0.0.1:8080 --workers 2 \
#     --ready notify --defer-accept 30s --dir /srv/app/current -- \
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
