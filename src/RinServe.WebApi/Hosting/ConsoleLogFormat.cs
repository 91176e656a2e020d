using Microsoft.Extensions.Logging.Console;

namespace RinServe.WebApi.Hosting;

/// <summary>
/// The console log format: plain lines for people (a terminal, Development), JSON lines for machines (a container,
/// output redirected to a file or a collector). <c>Logging:Console:FormatterName</c>, when set, wins.
/// </summary>
public static class ConsoleLogFormat
{
    public const string ConfigurationKey = "Logging:Console:FormatterName";

    /// <summary>Set to <c>true</c> by the .NET container images (and by the cuda target of our Dockerfile).</summary>
    public const string ContainerVariable = "DOTNET_RUNNING_IN_CONTAINER";

    /// <summary>The formatter name: the configured one; else JSON in a container; plain in Development; JSON when
    /// stdout is redirected; plain in a terminal.</summary>
    public static string Choose(string? configured, bool inContainer, bool isDevelopment, bool outputRedirected) =>
        !string.IsNullOrWhiteSpace(configured) ? configured
        : inContainer ? ConsoleFormatterNames.Json
        : isDevelopment ? ConsoleFormatterNames.Simple
        : outputRedirected ? ConsoleFormatterNames.Json
        : ConsoleFormatterNames.Simple;

    /// <summary>Chooses the console log format for this process (see <see cref="Choose"/>).</summary>
    public static void AddConsoleLogFormat(this WebApplicationBuilder builder)
    {
        var format = Choose(
            builder.Configuration[ConfigurationKey],
            string.Equals(Environment.GetEnvironmentVariable(ContainerVariable), "true", StringComparison.OrdinalIgnoreCase),
            builder.Environment.IsDevelopment(),
            Console.IsOutputRedirected);
        builder.Services.Configure<ConsoleLoggerOptions>(o => o.FormatterName = format);
        // Logging:Console:FormatterOptions serves both formatters; the plain one prints the timestamp right before the level.
        builder.Services.PostConfigure<SimpleConsoleFormatterOptions>(o => o.TimestampFormat = SeparatedTimestamp(o.TimestampFormat));
    }

    /// <summary>A timestamp format that ends in a space, so plain lines read "2026-01-01T00:00:00.000Z info: ...".</summary>
    public static string? SeparatedTimestamp(string? format) =>
        string.IsNullOrEmpty(format) || char.IsWhiteSpace(format[^1]) ? format : format + " ";
}
