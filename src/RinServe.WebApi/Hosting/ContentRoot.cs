namespace RinServe.WebApi.Hosting;

/// <summary>Finds the folder that holds appsettings.json and the relative <c>models</c> folder.</summary>
public static class ContentRoot
{
    /// <summary>
    /// The current directory when it has appsettings.json (<c>dotnet run</c> from the repo root,
    /// or a container's working dir); else the repo root above the binary (running a built dll from
    /// elsewhere); else the binary's folder, where the build copies appsettings.json.
    /// </summary>
    public static string Find()
    {
        var current = Directory.GetCurrentDirectory();
        if (File.Exists(Path.Combine(current, "appsettings.json")))
        {
            return current;
        }
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "appsettings.json")) && File.Exists(Path.Combine(dir.FullName, "WebApi.sln")))
            {
                return dir.FullName;
            }
        }
        return AppContext.BaseDirectory;
    }
}
