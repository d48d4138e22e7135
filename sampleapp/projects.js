// Projects page: "New project" opens the form; Enter adds an animated card to the list.
(function () {
  const colours = ["#7f56d9", "#f670c7", "#2e90fa", "#12b76a", "#f79009"];
  const form = document.getElementById("project-form");
  const input = document.getElementById("name");
  const list = document.getElementById("projects");
  document.getElementById("new-project").addEventListener("click", () => {
    form.classList.add("open");
    input.focus();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = input.value.trim();
    if (!name) return;
    const card = document.createElement("div");
    card.className = "card project-card";
    const dot = document.createElement("span");
    dot.className = "dot";
    dot.style.background = colours[list.children.length % colours.length];
    const body = document.createElement("div");
    const title = document.createElement("h3");
    title.textContent = name;  // textContent: user text is never parsed as HTML
    const when = document.createElement("p");
    when.textContent = "Created just now";
    body.append(title, when);
    card.append(dot, body);
    list.prepend(card);
    input.value = "";
  });
})();
