using System.Net;
using System.Net.Sockets;

namespace RinServe.Testing;

/// <summary>
/// Scaffolding that every test project and the load bench share, linked into each as source: the repository root, the
/// service build that matches the caller's own configuration, and a free loopback port.
/// </summary>
public static class TestPaths
{
    private static readonly Lazy<string> Root = new(() =>
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "WebApi.sln")))
                {
                    return dir.FullName;
                }
            }
        }
        throw new InvalidOperationException("repo root (WebApi.sln) not found above " + AppContext.BaseDirectory);
    });

    /// <summary>The checkout (the folder holding WebApi.sln) above this build or the current directory.</summary>
    public static string RepoRoot => Root.Value;

    /// <summary>The service's build in the caller's configuration and framework (bin/Release/net10.0 for a Release test build).</summary>
    public static string WebApiDll
    {
        get
        {
            var bin = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
            var dll = Path.Combine(RepoRoot, "src", "RinServe.WebApi", "bin", bin.Parent!.Name, bin.Name, "RinServe.WebApi.dll");
            return File.Exists(dll) ? dll : throw new FileNotFoundException("build src/RinServe.WebApi first", dll);
        }
    }

    /// <summary>A loopback port free at the time of asking (the OS picks it).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
